//! ONNX Runtime loading and model sessions checked against what the code expects, so a wrong or corrupt model
//! file stops start-up with a message naming the file and the fix, instead of failing on the first request.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::ValueType;

use crate::error::{EngineError, EngineResult};

pub(crate) const FETCH_FIX: &str = "Run scripts/fetch-models.sh to fetch and verify the models";

/// The process-wide ONNX Runtime: the shared library can be loaded once per process.
static RUNTIME: OnceLock<Result<(PathBuf, Environment), String>> = OnceLock::new();

/// Loads `libonnxruntime` from `library` (first call) and returns the environment sessions are built in.
pub fn environment(library: &Path) -> EngineResult<&'static Environment> {
    let loaded = RUNTIME.get_or_init(|| {
        if !library.is_file() {
            return Err(format!("{} does not exist. {FETCH_FIX}", library.display()));
        }
        let env = ort::init_from(library)
            .map_err(|e| format!("cannot load {}: {e}. {FETCH_FIX}", library.display()))?
            .with_name("faceplate")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", library.display()))?;
        Ok((library.to_path_buf(), env))
    });
    match loaded {
        Ok((path, env)) if path == library => Ok(env),
        Ok((path, _)) => Err(EngineError::Runtime(format!(
            "ONNX Runtime is already loaded from {}; one process cannot load a second copy from {}",
            path.display(),
            library.display()
        ))),
        Err(message) => Err(EngineError::Runtime(message.clone())),
    }
}

/// The tensor names and shapes a model must have (`-1`: a dynamic dimension, e.g. the batch).
pub struct ModelSpec {
    pub inputs: &'static [(&'static str, &'static [i64])],
    pub outputs: &'static [(&'static str, &'static [i64])],
}

/// Opens a model for one inference thread and checks it against `spec`.
///
/// Every session keeps ONNX Runtime's CPU memory arena, even where the input size changes from run to run (OCR):
/// without it each run maps its buffers afresh and faults every page in, which made OCR 1.4-1.5x slower on a
/// stream of photos of varying sizes (60 distorted ID cards and 60 bank cards, 2 threads). The arena keeps the
/// largest run's buffers for the session's lifetime, so a caller whose inputs are sometimes large gives them back
/// after those runs ([`shrinking_arena`]).
pub fn open_session(env: &Environment, path: &Path, spec: &ModelSpec) -> EngineResult<Session> {
    let model_error =
        |problem: String| EngineError::Model { path: path.to_path_buf(), problem, fix: FETCH_FIX.to_string() };
    if !path.is_file() {
        return Err(model_error("the file does not exist".into()));
    }
    // One intra-op thread per session: parallelism comes from several inference workers, which scales better
    // for many small requests than threads inside one run.
    let session = Session::builder(env)
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .with_intra_threads(1)
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(true).build()])
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| model_error(format!("ONNX Runtime cannot load it ({e})")))?;

    let check = |kind: &str, actual: &[ort::value::Outlet], expected: &[(&str, &[i64])]| -> EngineResult<()> {
        for (name, shape) in expected {
            let outlet = actual.iter().find(|o| o.name() == *name).ok_or_else(|| {
                let names: Vec<_> = actual.iter().map(|o| o.name().to_string()).collect();
                model_error(format!("it has no {kind} `{name}` (it has {names:?}); it is not the expected model"))
            })?;
            let ValueType::Tensor { shape: actual_shape, .. } = outlet.dtype() else {
                return Err(model_error(format!("{kind} `{name}` is not a tensor")));
            };
            let matches =
                actual_shape.len() == shape.len() && actual_shape.iter().zip(shape.iter()).all(|(a, e)| a == e);
            if !matches {
                return Err(model_error(format!(
                    "{kind} `{name}` has shape {:?}, expected {shape:?} (-1: dynamic)",
                    &actual_shape[..]
                )));
            }
        }
        Ok(())
    };
    check("input", session.inputs(), spec.inputs)?;
    check("output", session.outputs(), spec.outputs)?;
    Ok(session)
}

/// Run options that return the session's arena buffers to the system at the end of the run: for a run much
/// larger than usual, whose buffers the arena would otherwise keep for good.
pub fn shrinking_arena() -> EngineResult<RunOptions> {
    let mut options = RunOptions::new()?;
    options.set("memory.enable_memory_arena_shrinkage", "cpu:0")?;
    Ok(options)
}

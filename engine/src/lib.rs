//! Faceplate's inference engine. It knows images and models only: no HTTP, no SQL (a test checks that it
//! depends on neither actix nor diesel).
//!
//! [`Engine`] owns a fixed set of inference threads, each with its own model sessions, fed by a bounded queue:
//! when the queue is full a request is refused at once with [`EngineError::Busy`] instead of piling up.

pub mod confidence;
pub mod detect;
pub mod embed;
pub mod error;
pub mod geometry;
pub mod imaging;
pub mod quality;
pub mod runtime;

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

use image::RgbImage;
use ort::session::Session;

pub use detect::{Detection, DetectorSettings};
pub use error::{EngineError, EngineResult};
pub use geometry::{BoxF, Point};
pub use imaging::ImageLimits;
pub use quality::Quality;

/// Where the runtime library and the model files are.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub runtime_library: PathBuf,
    pub detector: PathBuf,
    pub embedder: PathBuf,
}

impl ModelPaths {
    /// The layout `scripts/fetch-models.sh` produces in its cache directory.
    pub fn in_dir(dir: impl Into<PathBuf>) -> ModelPaths {
        let dir = dir.into();
        ModelPaths {
            runtime_library: dir.join("lib/libonnxruntime.so.1.31.1"),
            detector: dir.join("yunet_2023mar.onnx"),
            embedder: dir.join("sface_2021dec.onnx"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub models: ModelPaths,
    /// Inference threads, each with its own sessions (default: one per CPU).
    pub workers: usize,
    /// Requests waiting for a thread before new ones are refused with `Busy`.
    pub queue_capacity: usize,
    pub detector: DetectorSettings,
    pub image_limits: ImageLimits,
    /// Faces per image that get landmarks, quality and an embedding (largest first); the rest are boxes only.
    pub max_embedded_faces: usize,
}

/// One face found in an image.
#[derive(Debug, Clone)]
pub struct Face {
    pub detection: Detection,
    /// Present for the `max_embedded_faces` largest faces.
    pub embedding: Option<[f32; embed::DIMENSIONS]>,
    pub quality: Option<Quality>,
}

/// The result of analysing one image.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub width: u32,
    pub height: u32,
    /// Largest face first.
    pub faces: Vec<Face>,
}

struct Models {
    detector: Session,
    embedder: Session,
}

type Job = Box<dyn FnOnce(&mut Models) + Send>;

/// The inference engine; cheap to share behind an `Arc`.
pub struct Engine {
    queue: mpsc::SyncSender<Job>,
    settings: EngineSettings,
}

impl Engine {
    /// Loads the runtime and the models (checking each), then starts the inference threads.
    pub fn start(settings: EngineSettings) -> EngineResult<Engine> {
        let env = runtime::environment(&settings.models.runtime_library)?;
        let (queue, jobs) = mpsc::sync_channel::<Job>(settings.queue_capacity.max(1));
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        for worker in 0..settings.workers.max(1) {
            let mut models = Models {
                detector: runtime::open_session(env, &settings.models.detector, &detect::SPEC)?,
                embedder: runtime::open_session(env, &settings.models.embedder, &embed::SPEC)?,
            };
            let jobs = std::sync::Arc::clone(&jobs);
            thread::Builder::new()
                .name(format!("inference-{worker}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, never while running one.
                        let job = match jobs.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut models),
                            Err(_) => return, // the engine was dropped
                        }
                    }
                })
                .map_err(|e| EngineError::Runtime(format!("cannot start an inference thread: {e}")))?;
        }
        Ok(Engine { queue, settings })
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Decodes and analyses an image on an inference thread. `Busy` at once when the queue is full.
    pub async fn analyze(&self, bytes: Vec<u8>) -> EngineResult<Analysis> {
        let settings = self.settings.clone();
        self.submit(move |models| analyze_image(models, &bytes, &settings)).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Models) -> EngineResult<T> + Send + 'static,
    ) -> EngineResult<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |models| {
            // A panic in one request must not take the inference thread down with it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(models)))
                .unwrap_or_else(|_| Err(EngineError::Runtime("inference panicked".into())));
            let _ = reply.send(outcome);
        });
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => EngineError::Busy,
            mpsc::TrySendError::Disconnected(_) => EngineError::Runtime("the inference threads have stopped".into()),
        })?;
        result.await.map_err(|_| EngineError::Runtime("the inference thread dropped the request".into()))?
    }
}

fn analyze_image(models: &mut Models, bytes: &[u8], settings: &EngineSettings) -> EngineResult<Analysis> {
    let image: RgbImage = imaging::decode(bytes, &settings.image_limits)?;
    let mut detections = detect::detect(&mut models.detector, &image, &settings.detector)?;
    detections.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    let embedded = detections.len().min(settings.max_embedded_faces);
    let crops: Vec<RgbImage> = detections[..embedded].iter().map(|d| embed::align(&image, &d.landmarks)).collect();
    let mut embeddings = Vec::with_capacity(crops.len());
    for crop in &crops {
        // One crop per run: the SFace export has a fixed batch of one.
        embeddings.extend(embed::embed(&mut models.embedder, std::slice::from_ref(crop))?);
    }
    let faces = detections
        .into_iter()
        .enumerate()
        .map(|(i, detection)| {
            let (embedding, quality) = match (embeddings.get(i), crops.get(i)) {
                (Some(e), Some(crop)) => (Some(*e), Some(quality::assess(&detection.bbox, &detection.landmarks, crop))),
                _ => (None, None),
            };
            Face { detection, embedding, quality }
        })
        .collect();
    Ok(Analysis { width: image.width(), height: image.height(), faces })
}

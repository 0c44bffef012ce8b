//! Faceplate's inference engine. It knows images and models only: no HTTP, no SQL (a test checks that it
//! depends on neither actix nor diesel).
//!
//! [`Engine`] owns a fixed set of detection threads, each with its own detector session, fed by a bounded
//! queue: when the queue is full a request is refused at once with [`EngineError::Busy`] instead of piling up.
//! The detection threads hand aligned faces to one embedding thread, which embeds the faces of concurrent
//! requests in one batch.

pub mod confidence;
pub mod detect;
pub mod embed;
pub mod error;
pub mod geometry;
pub mod imaging;
pub mod quality;
pub mod runtime;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
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

/// Requests waiting for a detection thread.
type Job = Box<dyn FnOnce(&mut Session, &Embedder) + Send>;

/// Aligned crops waiting for the embedding thread, with where to send their vectors.
struct EmbedJob {
    crops: Vec<RgbImage>,
    reply: mpsc::SyncSender<EngineResult<Vec<[f32; embed::DIMENSIONS]>>>,
}

/// The faces of concurrent requests are embedded together: the embedding thread takes whatever crops are
/// waiting (up to `MAX_EMBED_BATCH`) and runs them as one batch.
const MAX_EMBED_BATCH: usize = 32;

/// The detection threads' handle on the embedding stage.
#[derive(Clone)]
struct Embedder {
    queue: mpsc::Sender<EmbedJob>,
}

impl Embedder {
    fn embed(&self, crops: Vec<RgbImage>) -> EngineResult<Vec<[f32; embed::DIMENSIONS]>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, result) = mpsc::sync_channel(1);
        self.queue
            .send(EmbedJob { crops, reply })
            .map_err(|_| EngineError::Runtime("the embedding thread has stopped".into()))?;
        result.recv().map_err(|_| EngineError::Runtime("the embedding thread dropped the request".into()))?
    }
}

/// Counters for monitoring: average batch size = faces / runs.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub embedding_runs: AtomicU64,
    pub faces_embedded: AtomicU64,
}

/// The inference engine; cheap to share behind an `Arc`.
pub struct Engine {
    queue: mpsc::SyncSender<Job>,
    settings: EngineSettings,
    stats: Arc<EngineStats>,
}

impl Engine {
    /// Loads the runtime and the models (checking each), then starts the detection threads and the embedding
    /// thread.
    pub fn start(settings: EngineSettings) -> EngineResult<Engine> {
        let env = runtime::environment(&settings.models.runtime_library)?;
        let stats = Arc::new(EngineStats::default());

        let mut embedder_session = runtime::open_session(env, &settings.models.embedder, &embed::SPEC)?;
        let (embed_queue, embed_jobs) = mpsc::channel::<EmbedJob>();
        let embed_stats = Arc::clone(&stats);
        thread::Builder::new()
            .name("embedding".into())
            .spawn(move || run_embedder(&mut embedder_session, &embed_jobs, &embed_stats))
            .map_err(|e| EngineError::Runtime(format!("cannot start the embedding thread: {e}")))?;
        let embedder = Embedder { queue: embed_queue };

        let (queue, jobs) = mpsc::sync_channel::<Job>(settings.queue_capacity.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        for worker in 0..settings.workers.max(1) {
            let mut detector = runtime::open_session(env, &settings.models.detector, &detect::SPEC)?;
            let (jobs, embedder) = (Arc::clone(&jobs), embedder.clone());
            thread::Builder::new()
                .name(format!("detection-{worker}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, never while running one.
                        let job = match jobs.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut detector, &embedder),
                            Err(_) => return, // the engine was dropped
                        }
                    }
                })
                .map_err(|e| EngineError::Runtime(format!("cannot start a detection thread: {e}")))?;
        }
        Ok(Engine { queue, settings, stats })
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Decodes and analyses an image off the async threads. `Busy` at once when the queue is full.
    pub async fn analyze(&self, bytes: Vec<u8>) -> EngineResult<Analysis> {
        let settings = self.settings.clone();
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |detector, embedder| {
            // A panic in one request must not take the thread down with it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                analyze_image(detector, embedder, &bytes, &settings)
            }))
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

fn run_embedder(session: &mut Session, jobs: &mpsc::Receiver<EmbedJob>, stats: &EngineStats) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut faces = batch[0].crops.len();
        while faces < MAX_EMBED_BATCH {
            match jobs.try_recv() {
                Ok(job) => {
                    faces += job.crops.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let crops: Vec<RgbImage> = batch.iter().flat_map(|job| job.crops.iter().cloned()).collect();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| embed::embed(session, &crops)))
            .unwrap_or_else(|_| Err(EngineError::Runtime("embedding panicked".into())));
        stats.embedding_runs.fetch_add(1, Ordering::Relaxed);
        stats.faces_embedded.fetch_add(crops.len() as u64, Ordering::Relaxed);
        match outcome {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for job in batch {
                    let mine: Vec<_> = vectors.by_ref().take(job.crops.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(EngineError::Runtime(message.clone())));
                }
            }
        }
    }
}

fn analyze_image(
    detector: &mut Session,
    embedder: &Embedder,
    bytes: &[u8],
    settings: &EngineSettings,
) -> EngineResult<Analysis> {
    let image: RgbImage = imaging::decode(bytes, &settings.image_limits)?;
    let mut detections = detect::detect(detector, &image, &settings.detector)?;
    detections.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    let embedded = detections.len().min(settings.max_embedded_faces);
    let crops: Vec<RgbImage> = detections[..embedded].iter().map(|d| embed::align(&image, &d.landmarks)).collect();
    let embeddings = embedder.embed(crops.clone())?;
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

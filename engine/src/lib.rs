//! Faceplate's inference engine. It knows images and models only: no HTTP, no SQL (a test checks that it
//! depends on neither actix nor diesel).
//!
//! [`Engine`] owns a fixed set of inference threads, each with its own face-detector and OCR sessions, fed by one
//! bounded queue: when the queue is full a request (face analysis or text reading) is refused at once with
//! [`EngineError::Busy`] instead of piling up. The inference threads hand aligned faces to a pool of embedding
//! threads (as many as inference threads).
//! When threads are idle, one request's faces are spread over them and embedded in parallel; when all are
//! busy, a thread takes every face waiting (from any request) and embeds them in one batch.

pub mod confidence;
pub mod detect;
pub mod embed;
pub mod error;
pub mod geometry;
pub mod imaging;
pub mod ocr;
pub mod plate;
pub mod quality;
pub mod runtime;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use image::RgbImage;
use ort::session::Session;

pub use detect::{Detection, DetectorSettings};
pub use error::{EngineError, EngineResult};
pub use geometry::{BoxF, Point};
pub use imaging::ImageLimits;
pub use ocr::{OcrModelPaths, OcrOutput, OcrSettings, TextLine, TextRow};
pub use plate::{PlateColour, PlateModelPaths, PlateOutput, PlateReading, PlateSettings};
pub use quality::Quality;

/// Where the runtime library and the model files are.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub runtime_library: PathBuf,
    pub detector: PathBuf,
    pub embedder: PathBuf,
    /// The OCR models; `None` starts the engine without OCR ([`Engine::read_text`] then fails).
    pub ocr: Option<OcrModelPaths>,
    /// The licence-plate models; `None` starts the engine without them ([`Engine::read_plates`] then fails).
    pub plates: Option<PlateModelPaths>,
}

/// Where `scripts/fetch-models.sh` puts the models: `$FACEPLATE_MODELS_DIR`, else
/// `$XDG_CACHE_HOME/faceplate/models` (or `~/.cache/faceplate/models`).
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACEPLATE_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
    cache.join("faceplate/models")
}

impl ModelPaths {
    /// The layout `scripts/fetch-models.sh` produces in its cache directory.
    pub fn in_dir(dir: impl Into<PathBuf>) -> ModelPaths {
        let dir = dir.into();
        ModelPaths {
            runtime_library: dir.join("lib/libonnxruntime.so.1.31.1"),
            detector: dir.join("yunet_2023mar.onnx"),
            embedder: dir.join("sface_2021dec.onnx"),
            ocr: Some(OcrModelPaths::in_dir(&dir)),
            plates: Some(PlateModelPaths::in_dir(&dir)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub models: ModelPaths,
    /// Inference threads, each with its own sessions (default: one per CPU): face detection and OCR.
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

/// What one inference thread owns: its sessions and the way to the embedding threads.
struct Worker {
    detector: Session,
    embedder: Embedder,
    ocr: Option<ocr::Ocr>,
    plates: Option<plate::Plates>,
}

/// Requests waiting for an inference thread.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Aligned crops waiting for an embedding thread, with where to send their vectors.
struct EmbedJob {
    crops: Vec<RgbImage>,
    reply: mpsc::SyncSender<EngineResult<Vec<[f32; embed::DIMENSIONS]>>>,
}

/// The most faces one embedding run takes when it gathers waiting jobs into a batch.
const MAX_EMBED_BATCH: usize = 32;

/// The embedding stage as the detection threads see it.
#[derive(Clone)]
struct Embedder {
    queue: mpsc::Sender<EmbedJob>,
    threads: usize,
}

impl Embedder {
    /// Embeds the crops, split into one job per embedding thread so idle threads work on them in parallel
    /// (on a CPU, batching saves little: measured 35 ms a face alone, 31 ms in a batch of ten).
    fn embed(&self, crops: Vec<RgbImage>) -> EngineResult<Vec<[f32; embed::DIMENSIONS]>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let per_job = crops.len().div_ceil(self.threads.max(1));
        let mut replies = Vec::new();
        let mut crops = crops.into_iter().peekable();
        while crops.peek().is_some() {
            let (reply, result) = mpsc::sync_channel(1);
            let chunk: Vec<RgbImage> = crops.by_ref().take(per_job).collect();
            self.queue
                .send(EmbedJob { crops: chunk, reply })
                .map_err(|_| EngineError::Runtime("the embedding threads have stopped".into()))?;
            replies.push(result);
        }
        let mut vectors = Vec::new();
        for result in replies {
            vectors.extend(
                result.recv().map_err(|_| EngineError::Runtime("an embedding thread dropped the request".into()))??,
            );
        }
        Ok(vectors)
    }
}

/// The embedding threads' shared queue and how many of them are waiting for work.
struct EmbedQueue {
    jobs: Mutex<mpsc::Receiver<EmbedJob>>,
    idle: AtomicUsize,
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
    /// Loads the runtime and the models (checking each), then starts the inference and embedding threads.
    pub fn start(settings: EngineSettings) -> EngineResult<Engine> {
        let env = runtime::environment(&settings.models.runtime_library)?;
        let stats = Arc::new(EngineStats::default());
        let threads = settings.workers.max(1);

        let (embed_queue, embed_jobs) = mpsc::channel::<EmbedJob>();
        let shared = Arc::new(EmbedQueue { jobs: Mutex::new(embed_jobs), idle: AtomicUsize::new(0) });
        for index in 0..threads {
            let mut session = runtime::open_session(env, &settings.models.embedder, &embed::SPEC)?;
            let (shared, stats) = (Arc::clone(&shared), Arc::clone(&stats));
            thread::Builder::new()
                .name(format!("embedding-{index}"))
                .spawn(move || run_embedder(&mut session, &shared, &stats))
                .map_err(|e| EngineError::Runtime(format!("cannot start an embedding thread: {e}")))?;
        }
        let embedder = Embedder { queue: embed_queue, threads };

        let (queue, jobs) = mpsc::sync_channel::<Job>(settings.queue_capacity.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..threads {
            let detector = runtime::open_session(env, &settings.models.detector, &detect::SPEC)?;
            let ocr = settings.models.ocr.as_ref().map(|paths| ocr::Ocr::open(env, paths)).transpose()?;
            let plates = settings.models.plates.as_ref().map(|paths| plate::Plates::open(env, paths)).transpose()?;
            let mut worker = Worker { detector, embedder: embedder.clone(), ocr, plates };
            let jobs = Arc::clone(&jobs);
            thread::Builder::new()
                .name(format!("inference-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, never while running one.
                        let job = match jobs.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut worker),
                            Err(_) => return, // the engine was dropped
                        }
                    }
                })
                .map_err(|e| EngineError::Runtime(format!("cannot start an inference thread: {e}")))?;
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
        self.run(move |worker| analyze_image(&mut worker.detector, &worker.embedder, &bytes, &settings)).await
    }

    /// Decodes an image and reads its text (OCR, default settings) off the async threads, with the same queue
    /// and `Busy` refusal as [`Engine::analyze`]. An image without text gives no lines, not an error.
    pub async fn read_text(&self, bytes: Vec<u8>) -> EngineResult<OcrOutput> {
        self.read_text_with(bytes, OcrSettings::default()).await
    }

    /// [`Engine::read_text`] with other OCR settings.
    pub async fn read_text_with(&self, bytes: Vec<u8>, ocr_settings: OcrSettings) -> EngineResult<OcrOutput> {
        let limits = self.settings.image_limits;
        self.run(move |worker| {
            let Some(ocr) = worker.ocr.as_mut() else {
                return Err(EngineError::Runtime(
                    "OCR is not configured: the engine was started without OCR models".into(),
                ));
            };
            let image = imaging::decode(&bytes, &limits)?;
            ocr.read(&image, &ocr_settings)
        })
        .await
    }

    /// Decodes an image and finds and reads its licence plates off the async threads, with the same queue and
    /// `Busy` refusal as [`Engine::analyze`]. An image without plates gives none, not an error.
    pub async fn read_plates(&self, bytes: Vec<u8>, plate_settings: PlateSettings) -> EngineResult<PlateOutput> {
        let limits = self.settings.image_limits;
        self.run(move |worker| {
            let Some(plates) = worker.plates.as_mut() else {
                return Err(EngineError::Runtime(
                    "licence plates are not configured: the engine was started without the plate models".into(),
                ));
            };
            let image = imaging::decode(&bytes, &limits)?;
            plates.read(&image, &plate_settings, worker.ocr.as_mut())
        })
        .await
    }

    /// Runs `work` on an inference thread. `Busy` at once when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Worker) -> EngineResult<T> + Send + 'static,
    ) -> EngineResult<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |worker| {
            // A panic in one request must not take the thread down with it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(worker)))
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

fn run_embedder(session: &mut Session, queue: &EmbedQueue, stats: &EngineStats) {
    loop {
        let batch = {
            // Idle from here until a job arrives, including while waiting for the queue lock.
            queue.idle.fetch_add(1, Ordering::SeqCst);
            let Ok(jobs) = queue.jobs.lock() else { return };
            let first = jobs.recv();
            queue.idle.fetch_sub(1, Ordering::SeqCst);
            let Ok(first) = first else { return }; // the engine was dropped
            let mut batch = vec![first];
            let mut faces = batch[0].crops.len();
            // Gather more only when no other thread is free to take it: parallel first, batched when saturated.
            while faces < MAX_EMBED_BATCH && queue.idle.load(Ordering::SeqCst) == 0 {
                match jobs.try_recv() {
                    Ok(job) => {
                        faces += job.crops.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
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

use std::path::PathBuf;

/// Everything the engine can refuse or fail at. Input problems are the caller's; the rest are ours.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bytes are not an image in a supported format (JPEG, PNG, WebP, BMP).
    #[error("unsupported image format{}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    UnsupportedFormat(Option<String>),
    /// The image is damaged or truncated.
    #[error("the image cannot be decoded: {0}")]
    CorruptImage(String),
    /// The encoded file is larger than allowed.
    #[error("the image file is {actual} bytes; the limit is {limit}")]
    FileTooLarge { actual: usize, limit: usize },
    /// The pixel dimensions are outside the allowed range.
    #[error("the image is {width}x{height} px; each side must be between {min} and {max} px")]
    BadDimensions { width: u32, height: u32, min: u32, max: u32 },
    /// The inference queue is full; retry shortly.
    #[error("the inference queue is full")]
    Busy,
    /// A model file is missing or does not match what the engine expects.
    #[error("model {path}: {problem}. {fix}")]
    Model { path: PathBuf, problem: String, fix: String },
    /// ONNX Runtime could not be loaded or failed while running.
    #[error("inference runtime: {0}")]
    Runtime(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

impl From<ort::Error> for EngineError {
    fn from(e: ort::Error) -> Self {
        EngineError::Runtime(e.to_string())
    }
}

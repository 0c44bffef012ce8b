//! Decoding untrusted image bytes: format sniffing, size limits checked before any pixel is allocated
//! (decompression bombs), EXIF orientation, and conversion to 8-bit RGB whatever the source depth or colour.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{EngineError, EngineResult};

/// What an input image must satisfy. The defaults are Face++'s: at most 2 MB, each side 48..=4096 px.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    pub max_file_bytes: usize,
    pub min_side: u32,
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_file_bytes: 2 * 1024 * 1024, min_side: 48, max_side: 4096 }
    }
}

/// Decodes an image into upright 8-bit RGB.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> EngineResult<RgbImage> {
    if bytes.len() > limits.max_file_bytes {
        return Err(EngineError::FileTooLarge { actual: bytes.len(), limit: limits.max_file_bytes });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| EngineError::CorruptImage(e.to_string()))?;
    let format = reader.format().ok_or(EngineError::UnsupportedFormat(None))?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Bmp) {
        return Err(EngineError::UnsupportedFormat(Some(format!("{format:?}"))));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(EngineError::CorruptImage("the JPEG data is truncated (no end-of-image marker)".into()));
    }
    let mut decoder = reader.into_decoder().map_err(|e| EngineError::CorruptImage(e.to_string()))?;
    // Dimensions come from the header: refuse before decoding, so a 20000x20000 PNG never allocates.
    let (width, height) = decoder.dimensions();
    if width < limits.min_side || height < limits.min_side || width > limits.max_side || height > limits.max_side {
        return Err(EngineError::BadDimensions { width, height, min: limits.min_side, max: limits.max_side });
    }
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // 4096 x 4096 x 4 channels x 2 bytes, plus headroom for the decoder's own buffers.
    decoder_limits.max_alloc = Some(256 * 1024 * 1024);
    decoder.set_limits(decoder_limits).map_err(|e| EngineError::CorruptImage(e.to_string()))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| EngineError::CorruptImage(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// The JPEG decoder fills a truncated scan with grey rather than failing; a truncated upload should be refused,
/// not analysed half-blank. Inside entropy-coded data 0xFF is always stuffed, so an end-of-image marker after
/// the last start-of-scan marker means the scan is complete (an EXIF thumbnail's markers come earlier).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(start) => bytes[start..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

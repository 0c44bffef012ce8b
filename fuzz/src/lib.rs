//! The checks the fuzz targets run, kept in a library so that the smoke test (`tests/corpus.rs`) runs the very
//! same code over the corpus on stable Rust, without cargo-fuzz or libFuzzer.

use faceplate_engine::ImageLimits;
use faceplate_engine::detect::{INPUT_SIZE, preprocess};
use faceplate_engine::imaging::decode;

/// Untrusted bytes through what an upload goes through before the model: decode with the API's default limits,
/// then letterbox into the 640x640 detector tensor. Errors are fine; a panic, an allocation past libFuzzer's
/// `-malloc_limit_mb` or a hang past `-timeout` is a finding.
pub fn decode_and_preprocess(data: &[u8]) {
    let limits = ImageLimits::default();
    let Ok(image) = decode(data, &limits) else {
        return;
    };
    // What decode promises whenever it succeeds.
    let (w, h) = image.dimensions();
    assert!(
        (limits.min_side..=limits.max_side).contains(&w) && (limits.min_side..=limits.max_side).contains(&h),
        "decode returned {w}x{h}, outside {}..={}",
        limits.min_side,
        limits.max_side
    );
    assert_eq!(image.as_raw().len(), w as usize * h as usize * 3, "RGB buffer length");
    let Ok((tensor, scale)) = preprocess(&image) else {
        return;
    };
    let side = INPUT_SIZE as usize;
    assert_eq!(tensor.shape(), &[1, 3, side, side], "tensor shape");
    assert!(scale.is_finite() && scale > 0.0, "scale {scale}");
    // The letterboxed picture fits the canvas: its longer side is the full 640 (within rounding).
    let longest = (w.max(h) as f32 * scale).round() as u32;
    assert!(longest.abs_diff(INPUT_SIZE) <= 1, "{w}x{h} scaled by {scale} gives {longest}, not {INPUT_SIZE}");
}

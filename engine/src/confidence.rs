//! Turning SFace cosine similarity into Face++-style confidence (0-100) with thresholds at fixed false-accept
//! rates. How the anchor values were obtained, and how to re-measure them, is in docs/confidence.md.

/// Cosine similarity at which the false-accept rate is 1e-3, 1e-4 and 1e-5 (see docs/confidence.md).
pub const COSINE_AT_FAR: [(f64, &str); 3] = [(0.42, "1e-3"), (0.48, "1e-4"), (0.54, "1e-5")];

/// The confidence each threshold maps to: Face++'s published sample values, so clients tuned on Face++ read
/// our numbers the same way.
pub const CONFIDENCE_AT_FAR: [f64; 3] = [65.3, 71.8, 76.5];

/// Monotone piecewise-linear map from cosine similarity to 0..100, through (−1, 0), (0, 20), the three
/// threshold anchors and (1, 100).
pub fn confidence(cosine: f32) -> f64 {
    let knots: [(f64, f64); 6] = [
        (-1.0, 0.0),
        (0.0, 20.0),
        (COSINE_AT_FAR[0].0, CONFIDENCE_AT_FAR[0]),
        (COSINE_AT_FAR[1].0, CONFIDENCE_AT_FAR[1]),
        (COSINE_AT_FAR[2].0, CONFIDENCE_AT_FAR[2]),
        (1.0, 100.0),
    ];
    let c = (cosine as f64).clamp(-1.0, 1.0);
    for pair in knots.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if c <= x1 {
            let value = y0 + (c - x0) / (x1 - x0) * (y1 - y0);
            return (value * 1000.0).round() / 1000.0;
        }
    }
    100.0
}

/// `("1e-3", 65.3)`, ...: the confidence a match must exceed for each false-accept rate.
pub fn thresholds() -> [(&'static str, f64); 3] {
    [
        (COSINE_AT_FAR[0].1, CONFIDENCE_AT_FAR[0]),
        (COSINE_AT_FAR[1].1, CONFIDENCE_AT_FAR[1]),
        (COSINE_AT_FAR[2].1, CONFIDENCE_AT_FAR[2]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_monotone_and_hits_the_anchors() {
        let mut last = -1.0;
        for i in -100..=100 {
            let c = confidence(i as f32 / 100.0);
            assert!(c >= last && (0.0..=100.0).contains(&c));
            last = c;
        }
        for ((cos, _), conf) in COSINE_AT_FAR.iter().zip(CONFIDENCE_AT_FAR) {
            assert!((confidence(*cos as f32) - conf).abs() < 0.01);
        }
        assert_eq!(confidence(1.0), 100.0);
        assert_eq!(confidence(-1.0), 0.0);
    }
}

//! Per-face quality signals so clients can reject poor enrolments: size, sharpness and head pose estimated
//! from the five landmarks (no extra model).

use image::RgbImage;

use crate::geometry::{BoxF, Point};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// The shorter side of the face box in source pixels.
    pub face_size: f32,
    /// Variance of the Laplacian of the aligned 112x112 face (grey levels²): higher is sharper; below ~100
    /// is usually visibly blurred.
    pub sharpness: f32,
    /// Head turn left/right in degrees (0 = frontal), from the nose offset between the eyes.
    pub yaw: f32,
    /// Head nod in degrees (0 = level), from the nose height between eyes and mouth.
    pub pitch: f32,
    /// In-plane tilt in degrees, from the eye line.
    pub roll: f32,
}

pub fn assess(bbox: &BoxF, landmarks: &[Point; 5], aligned: &RgbImage) -> Quality {
    let [eye_a, eye_b, nose, mouth_a, mouth_b] = *landmarks;
    let eye_mid = [(eye_a[0] + eye_b[0]) / 2.0, (eye_a[1] + eye_b[1]) / 2.0];
    let mouth_mid = [(mouth_a[0] + mouth_b[0]) / 2.0, (mouth_a[1] + mouth_b[1]) / 2.0];
    let eye_dx = eye_b[0] - eye_a[0];
    let eye_dy = eye_b[1] - eye_a[1];
    let eye_distance = (eye_dx * eye_dx + eye_dy * eye_dy).sqrt().max(1e-3);
    let roll = eye_dy.atan2(eye_dx).to_degrees();

    // Work in the face's own frame (undo roll) so tilt does not read as turn.
    let (cos, sin) = (roll.to_radians().cos(), roll.to_radians().sin());
    let rotate = |p: Point| {
        let (x, y) = (p[0] - eye_mid[0], p[1] - eye_mid[1]);
        [x * cos + y * sin, -x * sin + y * cos]
    };
    let nose_r = rotate(nose);
    let mouth_r = rotate(mouth_mid);
    // Nose offset from the eye midpoint, relative to half the eye distance: ±1 means the nose reaches an eye.
    let yaw = (nose_r[0] / (eye_distance / 2.0)).clamp(-1.0, 1.0).asin().to_degrees();
    // On a level frontal face the nose tip sits ~45% of the way from the eye line to the mouth.
    let vertical = mouth_r[1].max(1e-3);
    let pitch = ((nose_r[1] / vertical - 0.45) / 0.45).clamp(-1.0, 1.0).asin().to_degrees();

    Quality { face_size: bbox.width().min(bbox.height()), sharpness: laplacian_variance(aligned), yaw, pitch, roll }
}

fn laplacian_variance(image: &RgbImage) -> f32 {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> =
        image.pixels().map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).collect();
    let mut values = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = grey[y * w + x];
            values.push(
                grey[(y - 1) * w + x] + grey[(y + 1) * w + x] + grey[y * w + x - 1] + grey[y * w + x + 1] - 4.0 * c,
            );
        }
    }
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n
}

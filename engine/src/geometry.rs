//! Boxes, points and the similarity transform that aligns a face to the ArcFace template.

/// A face box in source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxF {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BoxF {
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    pub fn iou(&self, other: &BoxF) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        inter / (self.area() + other.area() - inter + 1e-9)
    }
}

pub type Point = [f32; 2];

/// Greedy non-maximum suppression; returns the kept indices, best score first.
pub fn nms(boxes: &[BoxF], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.iter().all(|&k| boxes[k].iou(&boxes[i]) <= iou_threshold) {
            keep.push(i);
        }
    }
    keep
}

/// The 112x112 ArcFace template: eye (image-left), eye (image-right), nose tip, mouth corners.
pub const ARCFACE_TEMPLATE: [Point; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// A 2x3 affine matrix `[a, -b, tx; b, a, ty]` (rotation, uniform scale, translation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// Least-squares similarity mapping `src` onto `dst` (Umeyama's method without reflection, which in 2-D
    /// has this closed form).
    pub fn estimate(src: &[Point; 5], dst: &[Point; 5]) -> Similarity {
        let n = src.len() as f64;
        let mean = |pts: &[Point; 5]| {
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0] as f64, y + p[1] as f64));
            (sx / n, sy / n)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = (s[0] as f64 - msx, s[1] as f64 - msy);
            let (dx, dy) = (d[0] as f64 - mdx, d[1] as f64 - mdy);
            dot += sx * dx + sy * dy;
            cross += sx * dy - sy * dx;
            norm += sx * sx + sy * sy;
        }
        let norm = norm.max(1e-12);
        let (a, b) = (dot / norm, cross / norm);
        Similarity { a, b, tx: mdx - (a * msx - b * msy), ty: mdy - (b * msx + a * msy) }
    }

    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = (p[0] as f64, p[1] as f64);
        [(self.a * x - self.b * y + self.tx) as f32, (self.b * x + self.a * y + self.ty) as f32]
    }

    pub fn inverse(&self) -> Similarity {
        let det = (self.a * self.a + self.b * self.b).max(1e-12);
        let (ia, ib) = (self.a / det, -self.b / det);
        Similarity { a: ia, b: ib, tx: -(ia * self.tx - ib * self.ty), ty: -(ib * self.tx + ia * self.ty) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let truth = Similarity { a: 0.8, b: 0.3, tx: 12.0, ty: -7.0 };
        let src = [[10.0, 20.0], [50.0, 22.0], [30.0, 40.0], [15.0, 60.0], [45.0, 61.0]];
        let dst = src.map(|p| truth.apply(p));
        let est = Similarity::estimate(&src, &dst);
        for (got, want) in [(est.a, truth.a), (est.b, truth.b), (est.tx, truth.tx), (est.ty, truth.ty)] {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
        let back = est.inverse().apply(est.apply([3.0, 4.0]));
        assert!((back[0] - 3.0).abs() < 1e-4 && (back[1] - 4.0).abs() < 1e-4);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            BoxF { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 },
            BoxF { x1: 1.0, y1: 1.0, x2: 11.0, y2: 11.0 },
            BoxF { x1: 50.0, y1: 50.0, x2: 60.0, y2: 60.0 },
        ];
        assert_eq!(nms(&boxes, &[0.8, 0.9, 0.7], 0.3), vec![1, 2]);
    }
}

//! A plate's background colour from its straightened pixels (the recogniser reads characters only).
//!
//! Each pixel of the plate's inner part (the frame and the detector's slack trimmed) is put in one of five
//! classes by hue, saturation and value; the characters take well under half of a plate, so the most common
//! class is the background. Any sizeable green means a new-energy plate, whose gradient runs from green to
//! nearly white and would otherwise be called white.

use image::RgbImage;

/// The background colour of a plate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlateColour {
    Blue,
    Yellow,
    Green,
    White,
    Black,
}

/// Fraction of the inner pixels that must be green for a new-energy plate.
const GREEN_SHARE: f32 = 0.18;

/// The class of one pixel, or `None` for one that says little (greys, dim colours).
fn classify([r, g, b]: [u8; 3]) -> Option<PlateColour> {
    let (r, g, b) = (f32::from(r) / 255.0, f32::from(g) / 255.0, f32::from(b) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let (value, chroma) = (max, max - min);
    let saturation = if max > 0.0 { chroma / max } else { 0.0 };
    if value < 0.3 {
        return Some(PlateColour::Black);
    }
    if saturation < 0.22 {
        return (value > 0.6).then_some(PlateColour::White);
    }
    let hue = if chroma == 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / chroma).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / chroma + 2.0)
    } else {
        60.0 * ((r - g) / chroma + 4.0)
    };
    match hue {
        h if (35.0..70.0).contains(&h) => Some(PlateColour::Yellow),
        h if (70.0..170.0).contains(&h) => Some(PlateColour::Green),
        h if (170.0..260.0).contains(&h) => Some(PlateColour::Blue),
        _ => None,
    }
}

/// The background colour of a straightened plate crop; `None` when no class stands out (e.g. a red plate).
pub fn plate_colour(crop: &RgbImage) -> Option<PlateColour> {
    let (w, h) = crop.dimensions();
    let (x0, x1) = (w * 6 / 100, w - w * 6 / 100);
    let (y0, y1) = (h * 12 / 100, h - h * 12 / 100);
    let mut counts = [0usize; 5];
    let mut total = 0usize;
    for y in y0..y1 {
        for x in x0..x1 {
            total += 1;
            if let Some(class) = classify(crop.get_pixel(x, y).0) {
                counts[class as usize] += 1;
            }
        }
    }
    if total == 0 {
        return None;
    }
    if counts[PlateColour::Green as usize] as f32 >= GREEN_SHARE * total as f32 {
        return Some(PlateColour::Green);
    }
    let classes = [PlateColour::Blue, PlateColour::Yellow, PlateColour::Green, PlateColour::White, PlateColour::Black];
    let (best, n) = classes.into_iter().map(|c| (c, counts[c as usize])).max_by_key(|&(_, n)| n)?;
    // The background covers most of a plate; a winner under a third is noise.
    (n * 3 >= total).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A plate of `background` with a block of `text` colour over a quarter of it.
    fn plate(background: [u8; 3], text: [u8; 3]) -> RgbImage {
        RgbImage::from_fn(120, 40, |x, y| {
            if (20..50).contains(&x) && (10..30).contains(&y) { Rgb(text) } else { Rgb(background) }
        })
    }

    #[test]
    fn backgrounds_are_told_apart() {
        assert_eq!(plate_colour(&plate([20, 70, 200], [250, 250, 250])), Some(PlateColour::Blue));
        assert_eq!(plate_colour(&plate([240, 200, 20], [10, 10, 10])), Some(PlateColour::Yellow));
        assert_eq!(plate_colour(&plate([245, 245, 245], [10, 10, 10])), Some(PlateColour::White));
        assert_eq!(plate_colour(&plate([15, 15, 15], [240, 240, 240])), Some(PlateColour::Black));
        assert_eq!(plate_colour(&plate([200, 30, 30], [240, 240, 240])), None);
    }

    #[test]
    fn a_green_to_white_gradient_is_green() {
        let gradient = RgbImage::from_fn(120, 40, |x, _| {
            let t = x as f32 / 120.0;
            let mix = |a: f32, b: f32| (a + (b - a) * t) as u8;
            Rgb([mix(60.0, 240.0), mix(190.0, 250.0), mix(90.0, 240.0)])
        });
        assert_eq!(plate_colour(&gradient), Some(PlateColour::Green));
    }
}

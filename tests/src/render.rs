//! Document-like test images drawn with real fonts (Debian `fonts-dejavu-core` and `fonts-wqy-zenhei`,
//! installed by scripts/setup.sh): no real card photos exist in any package.

use std::io::Cursor;
use std::sync::OnceLock;

use ab_glyph::{Font, FontVec, PxScale};
use image::{ImageFormat, Rgb, RgbImage};
use imageproc::drawing::draw_text_mut;

pub struct Fonts {
    pub sans: FontVec,
    pub mono: FontVec,
    pub cjk: FontVec,
}

pub fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| {
        let load = |path: &str| {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/setup.sh"));
            FontVec::try_from_vec_and_index(data, 0).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        Fonts {
            sans: load("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
            mono: load("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"),
            cjk: load("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
        }
    })
}

/// Draws `text` at `size` pixels per em (as PIL's `truetype(size)`).
pub fn draw(image: &mut RgbImage, font: &FontVec, size: f32, (x, y): (i32, i32), colour: [u8; 3], text: &str) {
    let scale = PxScale::from(size * font.height_unscaled() / font.units_per_em().unwrap_or(1000.0));
    draw_text_mut(image, Rgb(colour), x, y, scale, font, text);
}

pub fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("encode png");
    out.into_inner()
}

/// The front of a Chinese resident identity card (layout only; 856 x 540).
pub fn id_card_front(name: &str, sex: &str, ethnicity: &str, birth: &str, address: &str, number: &str) -> Vec<u8> {
    let f = fonts();
    let mut card = RgbImage::from_pixel(856, 540, Rgb([235, 240, 245]));
    let black = [0, 0, 0];
    draw(&mut card, &f.cjk, 30.0, (40, 40), black, &format!("姓名  {name}"));
    draw(&mut card, &f.cjk, 30.0, (40, 100), black, &format!("性别  {sex}    民族  {ethnicity}"));
    draw(&mut card, &f.cjk, 30.0, (40, 160), black, &format!("出生  {birth}"));
    draw(&mut card, &f.cjk, 30.0, (40, 220), black, &format!("住址  {address}"));
    draw(&mut card, &f.cjk, 30.0, (40, 420), black, "公民身份号码");
    draw(&mut card, &f.mono, 32.0, (260, 418), black, number);
    png(&card)
}

/// A bank card (856 x 540).
pub fn bank_card(number: &str, expiry: &str, holder: &str) -> Vec<u8> {
    let f = fonts();
    let mut card = RgbImage::from_pixel(856, 540, Rgb([20, 40, 90]));
    let light = [230, 230, 230];
    draw(&mut card, &f.sans, 40.0, (50, 50), [255, 255, 255], "EXAMPLE BANK");
    draw(&mut card, &f.mono, 56.0, (60, 290), light, number);
    draw(&mut card, &f.sans, 28.0, (60, 400), light, &format!("VALID THRU {expiry}"));
    draw(&mut card, &f.sans, 34.0, (60, 450), light, holder);
    png(&card)
}

/// A passport data page's machine-readable zone (two lines of 44) under some printed text.
pub fn passport_mrz(lines: [&str; 2]) -> Vec<u8> {
    let f = fonts();
    let mut page = RgbImage::from_pixel(1100, 420, Rgb([245, 242, 235]));
    draw(&mut page, &f.sans, 30.0, (40, 40), [40, 40, 40], "PASSPORT  UTOPIA");
    draw(&mut page, &f.mono, 30.0, (30, 280), [0, 0, 0], lines[0]);
    draw(&mut page, &f.mono, 30.0, (30, 340), [0, 0, 0], lines[1]);
    png(&page)
}

//! Writes the seed corpus of the `decode` target: tiny valid images made here (no third-party files), one or
//! more per format the engine accepts, with a few of the features the decoders branch on (grey, alpha, 16-bit,
//! palette, RLE, EXIF orientation). Run from fuzz/: `cargo run --example gen_seeds` (writes corpus/decode/seed-*).
//! The output is deterministic; the committed seeds are exactly what this writes.

use std::path::Path;

use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Luma, LumaA, Rgb, Rgba};

fn rgb(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    // Blocky shapes compress well yet give the decoders real edges and colours.
    ImageBuffer::from_fn(w, h, |x, y| {
        let cell = ((x / 8) + (y / 8)) % 3;
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, [40, 140, 240][cell as usize]])
    })
}

fn encode(encoder: impl ImageEncoder, raw: &[u8], w: u32, h: u32, color: ExtendedColorType) {
    encoder.write_image(raw, w, h, color).expect("encode");
}

fn png(raw: &[u8], w: u32, h: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    encode(PngEncoder::new(&mut out), raw, w, h, color);
    out
}

fn jpeg(raw: &[u8], w: u32, h: u32, color: ExtendedColorType, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode(JpegEncoder::new_with_quality(&mut out, quality), raw, w, h, color);
    out
}

/// A big-endian TIFF block with a single Orientation (0x0112) entry, as EXIF carries it.
fn tiff_orientation(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&1u16.to_be_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_be_bytes()); // count
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]); // value padding
    t.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    t
}

/// The JPEG with an APP1 EXIF segment carrying `orientation` right after SOI.
fn jpeg_with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff_orientation(orientation));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The PNG with an eXIf chunk carrying `orientation` right after IHDR (8-byte signature + 25-byte IHDR chunk).
fn png_with_exif(png: &[u8], orientation: u16) -> Vec<u8> {
    let data = tiff_orientation(orientation);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    let mut typed = b"eXIf".to_vec();
    typed.extend(&data);
    chunk.extend(&typed);
    chunk.extend(crc32(&typed).to_be_bytes());
    let mut out = png[..33].to_vec();
    out.extend(chunk);
    out.extend_from_slice(&png[33..]);
    out
}

/// A 48x48 8-bit RLE-compressed BMP with a two-colour palette, written by hand (the encoder writes no RLE).
fn bmp_rle8() -> Vec<u8> {
    let (w, h) = (48i32, 48i32);
    let mut pixels = Vec::new();
    for row in 0..h {
        let split = (row as u8 % 24) + 12;
        pixels.extend_from_slice(&[split, 0, 48 - split, 1, 0, 0]); // two runs, end of line
    }
    pixels.extend_from_slice(&[0, 1]); // end of bitmap
    let palette = [0x20u8, 0x40, 0x60, 0, 0xE0, 0xC0, 0xA0, 0];
    let offset = 14 + 40 + palette.len() as u32;
    let mut out = b"BM".to_vec();
    out.extend((offset + pixels.len() as u32).to_le_bytes());
    out.extend([0u8; 4]);
    out.extend(offset.to_le_bytes());
    out.extend(40u32.to_le_bytes());
    out.extend(w.to_le_bytes());
    out.extend(h.to_le_bytes());
    out.extend(1u16.to_le_bytes()); // planes
    out.extend(8u16.to_le_bytes()); // bits per pixel
    out.extend(1u32.to_le_bytes()); // BI_RLE8
    out.extend((pixels.len() as u32).to_le_bytes());
    out.extend(2835i32.to_le_bytes());
    out.extend(2835i32.to_le_bytes());
    out.extend(2u32.to_le_bytes()); // colours used
    out.extend(0u32.to_le_bytes());
    out.extend(palette);
    out.extend(pixels);
    out
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    let square = rgb(48, 48);
    let wide = rgb(64, 48);
    let tall = rgb(48, 96);
    let grey = ImageBuffer::from_fn(48, 48, |x, y| Luma([((x ^ y) * 5) as u8]));
    let grey_alpha = ImageBuffer::from_fn(48, 48, |x, y| LumaA([(x * 5) as u8, (y * 5) as u8]));
    let rgba = ImageBuffer::from_fn(64, 48, |x, y| {
        Rgba([(x * 4) as u8, (y * 5) as u8, 128, if (x / 16 + y / 16) % 2 == 0 { 255 } else { 96 }])
    });

    seeds.push(("png-rgb-48x48.png", png(square.as_raw(), 48, 48, ExtendedColorType::Rgb8)));
    seeds.push(("png-rgba-64x48.png", png(rgba.as_raw(), 64, 48, ExtendedColorType::Rgba8)));
    seeds.push(("png-la-48x48.png", png(grey_alpha.as_raw(), 48, 48, ExtendedColorType::La8)));
    // The PNG encoder takes 16-bit samples in native byte order.
    let rgb16_ne: Vec<u8> = square.as_raw().iter().flat_map(|&v| (v as u16 * 257).to_ne_bytes()).collect();
    seeds.push(("png-rgb16-48x48.png", png(&rgb16_ne, 48, 48, ExtendedColorType::Rgb16)));
    seeds.push(("png-exif6-48x96.png", png_with_exif(&png(tall.as_raw(), 48, 96, ExtendedColorType::Rgb8), 6)));

    seeds.push(("jpeg-rgb-48x48.jpg", jpeg(square.as_raw(), 48, 48, ExtendedColorType::Rgb8, 60)));
    seeds.push(("jpeg-grey-48x48.jpg", jpeg(grey.as_raw(), 48, 48, ExtendedColorType::L8, 60)));
    let wide_jpeg = jpeg(wide.as_raw(), 64, 48, ExtendedColorType::Rgb8, 50);
    seeds.push(("jpeg-exif8-64x48.jpg", jpeg_with_exif(&wide_jpeg, 8)));

    let mut webp = Vec::new();
    encode(WebPEncoder::new_lossless(&mut webp), square.as_raw(), 48, 48, ExtendedColorType::Rgb8);
    seeds.push(("webp-lossless-48x48.webp", webp));
    let mut webp_alpha = Vec::new();
    encode(WebPEncoder::new_lossless(&mut webp_alpha), rgba.as_raw(), 64, 48, ExtendedColorType::Rgba8);
    seeds.push(("webp-lossless-rgba-64x48.webp", webp_alpha));

    let mut bmp = Vec::new();
    BmpEncoder::new(&mut bmp).write_image(grey.as_raw(), 48, 48, ExtendedColorType::L8).expect("bmp");
    seeds.push(("bmp-palette-48x48.bmp", bmp));
    seeds.push(("bmp-rle8-48x48.bmp", bmp_rle8()));

    let mut total = 0;
    for (name, bytes) in &seeds {
        total += bytes.len();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        println!("{:>6} seed-{name}", bytes.len());
    }
    println!("{total:>6} bytes in {} seeds, in {}", seeds.len(), dir.display());
}

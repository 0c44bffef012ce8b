//! The per-sample random stream and the few distributions the generators need.

use std::sync::OnceLock;

use chrono::NaiveDate;
use rand::distr::uniform::{SampleRange, SampleUniform};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded stream. ChaCha8 rather than `StdRng`: its output is fixed by its specification, so the same key gives
/// the same images on every platform and after dependency upgrades.
pub(crate) struct Rand(ChaCha8Rng);

impl Rand {
    /// A stream keyed by the user's seed, the sample index and a stream tag (kind, purpose): each key is an
    /// independent stream, so samples can be generated in any order or in parallel.
    pub fn new(seed: u64, index: u32, tag: [u8; 4]) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(&index.to_le_bytes());
        key[12..16].copy_from_slice(&tag);
        key[16..].copy_from_slice(b"faceplate-synth1");
        Self(ChaCha8Rng::from_seed(key))
    }

    pub fn range<T: SampleUniform, R: SampleRange<T>>(&mut self, range: R) -> T {
        self.0.random_range(range)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.0.random::<f32>()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(p.clamp(0.0, 1.0))
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *self.pick_ref(items)
    }

    pub fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.0.random_range(0..items.len())]
    }

    /// One of `items`, each with its weight.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut r = self.0.random_range(0..total.max(1));
        for (item, w) in items {
            if r < *w {
                return *item;
            }
            r -= w;
        }
        items[items.len() - 1].0
    }

    pub fn digit(&mut self) -> char {
        char::from(b'0' + self.0.random_range(0..10u8))
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| self.digit()).collect()
    }

    /// An uppercase letter not in `except`.
    pub fn letter(&mut self, except: &str) -> char {
        loop {
            let c = char::from(b'A' + self.0.random_range(0..26u8));
            if !except.contains(c) {
                return c;
            }
        }
    }

    /// A day in `from..=to` (both real dates).
    pub fn date(&mut self, from: NaiveDate, to: NaiveDate) -> NaiveDate {
        let days = (to - from).num_days().max(0);
        from + chrono::Duration::days(self.0.random_range(0..=days))
    }

    /// A standard normal sample (Box-Muller), for the few scalar draws; pixel noise uses [`Rand::noise`].
    pub fn gauss(&mut self) -> f32 {
        let u1 = self.0.random::<f32>().max(1e-7);
        let u2 = self.0.random::<f32>();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    /// Adds zero-mean gaussian noise of `sigma` to every byte. Per-pixel Box-Muller is too slow for megapixel
    /// images, so each sample is a lookup in a fixed table of normal values indexed by 12 random bits.
    pub fn noise(&mut self, bytes: &mut [u8], sigma: f32) {
        let table = normal_table();
        let mut bits = 0u64;
        let mut left = 0;
        for b in bytes {
            if left == 0 {
                bits = self.0.random::<u64>();
                left = 5;
            }
            let z = table[(bits & 0xFFF) as usize];
            bits >>= 12;
            left -= 1;
            // Casts saturate at 0 and 255.
            *b = (f32::from(*b) + z * sigma + 0.5) as u8;
        }
    }
}

/// 4096 standard normal values from a fixed stream: the same on every run.
fn normal_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut r = Rand::new(0, 0, *b"norm");
        (0..4096).map(|_| r.gauss()).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_stream_different_key_different_stream() {
        let draw = |seed, index, tag| {
            let mut r = Rand::new(seed, index, tag);
            (0..8).map(|_| r.range(0..1000u32)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 2, *b"abcd"), draw(1, 2, *b"abcd"));
        assert_ne!(draw(1, 2, *b"abcd"), draw(1, 3, *b"abcd"));
        assert_ne!(draw(1, 2, *b"abcd"), draw(2, 2, *b"abcd"));
        assert_ne!(draw(1, 2, *b"abcd"), draw(1, 2, *b"abce"));
    }

    #[test]
    fn noise_table_is_standard_normal() {
        let t = normal_table();
        let mean = t.iter().sum::<f32>() / t.len() as f32;
        let var = t.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / t.len() as f32;
        assert!(mean.abs() < 0.08, "{mean}");
        assert!((var - 1.0).abs() < 0.1, "{var}");
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut r = Rand::new(7, 0, *b"test");
        for _ in 0..200 {
            assert_ne!(r.weighted(&[('a', 0), ('b', 3), ('c', 1)]), 'a');
        }
    }
}

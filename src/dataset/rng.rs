//! Seeded randomness that gives the same numbers on every machine and in every thread
//! order: ChaCha8 keyed by (seed, item name, copy index), so each image's draws depend only
//! on its own name, never on which worker got to it first.
//!
//! Uniform floats, integers and normals are derived here rather than through `rand`'s
//! distributions, whose algorithms may change between versions and move every split.

use chacha20::rand_core::{Rng as _, SeedableRng};
use chacha20::ChaCha8Rng;

pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The generator for item `key` (a relative path, `/`-separated), copy `index`.
    pub fn for_item(seed: u64, key: &str, index: u64) -> Rng {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        s[8..16].copy_from_slice(&fnv1a(key.as_bytes()).to_le_bytes());
        s[16..24].copy_from_slice(&index.to_le_bytes());
        s[24..].copy_from_slice(b"qdet-ds1");
        Rng(ChaCha8Rng::from_seed(s))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n), without modulo bias (rejection sampling); n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.0.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Standard normal (Box-Muller; the second value is discarded to keep draws simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// FNV-1a, 64-bit: a fixed hash for item names (std's hasher may change between releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn chacha8_is_the_reference_stream() {
        // rand_chacha's published ChaCha8 test vector: all-zero key, first words of block 0.
        let mut r = ChaCha8Rng::from_seed([0u8; 32]);
        let first = r.next_u32();
        assert_eq!(first, 0x2fef003e);
    }

    #[test]
    fn draws_depend_on_seed_item_and_index_only() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_item(7, "a/b.jpg", 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r = Rng::for_item(7, "a/b.jpg", 3);
        let first = r.next_u64();
        assert_ne!(first, Rng::for_item(8, "a/b.jpg", 3).next_u64());
        assert_ne!(first, Rng::for_item(7, "a/c.jpg", 3).next_u64());
        assert_ne!(first, Rng::for_item(7, "a/b.jpg", 4).next_u64());
        let mut r = Rng::for_item(1, "x", 0);
        for _ in 0..1000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
        }
        let mut v: Vec<u32> = (0..50).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut r = Rng::for_item(0, "n", 0);
        let xs: Vec<f64> = (0..20000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }
}

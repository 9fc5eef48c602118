//! How many distinct values a client sent, in 32 bytes: a 256-bit bitmap with linear
//! counting (Whang, Vander-Zanden and Taylor, 1990).
//!
//! Each value sets the bit its keyed hash picks; the estimate of n distinct values is
//! `m · ln(m / z)` with m = 256 bits and z of them still zero. Its relative standard
//! error is `sqrt(m (e^t − t − 1)) / n` at load t = n/m: about 4.6 % at 50 values, 4.7 %
//! at 100, 5 % at 200, and nearly exact below 20 (two values share a bit with
//! probability 1/256). Past about 600 values the bitmap fills and the estimate stops
//! growing at [`Distinct::CEILING`]; thresholds are therefore capped at
//! [`Distinct::MAX_THRESHOLD`]. A HyperLogLog of the same 32 bytes (32 one-byte
//! registers) would err by 18 %: at the thresholds a behaviour rule uses, the bitmap is
//! the better sketch.

/// The bitmap: bit `h % 256` of four words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Distinct(pub [u64; 4]);

impl Distinct {
    /// Bits in the bitmap.
    const BITS: u32 = 256;
    /// Bytes it takes in a slot.
    pub(crate) const BYTES: usize = 32;
    /// The largest estimate, when every bit is set: `256 · ln 256`.
    pub(crate) const CEILING: u32 = 1420;
    /// The largest threshold a rule may count up to: well below the ceiling, where the
    /// error is still about 5 %.
    pub(crate) const MAX_THRESHOLD: u32 = 200;

    /// Records a value by its keyed hash (the caller's [`crate::abuse::slots::SlotSecret`]
    /// fingerprint: a client cannot aim at bits it already set).
    pub(crate) fn insert(&mut self, hash: u64) {
        let bit = hash % u64::from(Self::BITS);
        if let Some(word) = self.0.get_mut((bit / 64) as usize) {
            *word |= 1 << (bit % 64);
        }
    }

    /// The estimated number of distinct values recorded.
    pub(crate) fn estimate(&self) -> u32 {
        let set: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        let zero = Self::BITS - set;
        if zero == 0 {
            return Self::CEILING;
        }
        let m = f64::from(Self::BITS);
        let estimate = (m * (m / f64::from(zero)).ln()).round();
        // In 0..=CEILING by construction; the cast saturates anyway.
        estimate as u32
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for word in self.0 {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Distinct> {
        let mut words = [0u64; 4];
        let mut chunks = bytes.chunks_exact(8);
        for word in &mut words {
            *word = u64::from_le_bytes(chunks.next()?.try_into().ok()?);
        }
        Some(Distinct(words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SECRET;

    fn sketch_of(values: impl Iterator<Item = u64>) -> Distinct {
        let mut sketch = Distinct::default();
        for v in values {
            sketch.insert(SECRET.fingerprint(&v.to_le_bytes()));
        }
        sketch
    }

    #[test]
    fn repeats_do_not_count_and_small_sets_are_nearly_exact() {
        let sketch = sketch_of((0..5).cycle().take(1000));
        assert_eq!(sketch.estimate(), 5);
        assert_eq!(Distinct::default().estimate(), 0);
    }

    /// The estimate's error at the thresholds a rule uses, over 400 independent sets each
    /// (different values, so different bits): unbiased, with the standard deviation the
    /// module docs state, and never off by more than 4.5 of them.
    #[test]
    fn estimates_are_within_the_stated_error() {
        for n in [20u64, 50, 100, 200] {
            let m = 256.0f64;
            let t = n as f64 / m;
            let sigma = (m * (t.exp() - t - 1.0)).sqrt();
            let errors: Vec<f64> = (0..400u64)
                .map(|trial| {
                    let sketch = sketch_of((0..n).map(|i| trial << 32 | i));
                    f64::from(sketch.estimate()) - n as f64
                })
                .collect();
            let mean = errors.iter().sum::<f64>() / 400.0;
            let sd = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / 400.0).sqrt();
            let worst = errors.iter().fold(0.0f64, |w, e| w.max(e.abs()));
            assert!(
                mean.abs() < sigma / 3.0 + 0.5,
                "n={n}: mean error {mean:.2}"
            );
            assert!(
                sd < 1.2 * sigma + 0.5,
                "n={n}: sd {sd:.2}, stated {sigma:.2}"
            );
            assert!(
                worst <= 4.5 * sigma + 1.0,
                "n={n}: worst {worst} (sigma {sigma:.1})"
            );
        }
    }

    #[test]
    fn a_full_bitmap_saturates_at_the_ceiling() {
        let sketch = sketch_of(0..100_000);
        assert_eq!(sketch.estimate(), Distinct::CEILING);
        const { assert!(Distinct::MAX_THRESHOLD < Distinct::CEILING / 2) };
    }

    #[test]
    fn it_round_trips_and_short_bytes_do_not_decode() {
        let sketch = sketch_of(0..40);
        let mut bytes = Vec::new();
        sketch.encode(&mut bytes);
        assert_eq!(bytes.len(), Distinct::BYTES);
        assert_eq!(Distinct::decode(&bytes), Some(sketch));
        assert_eq!(Distinct::decode(&bytes[..31]), None);
    }
}

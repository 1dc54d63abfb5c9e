//! The latency sketch of the rollups: a mergeable summary of a set of latencies from
//! which any percentile comes back within 1 % of its exact value.
//!
//! It is a DDSketch (Masson, Rim and Lee, VLDB 2019): a latency `x` is counted in the
//! bucket `i = ⌈ln x / ln γ⌉` with `γ = (1 + α) / (1 − α)`, and read back as the bucket's
//! midpoint `2γⁱ / (γ + 1)`, which is within the relative error `α` of every value of the
//! bucket. Chosen over t-digest (error bounded by rank, not value: a P99 of 1,000 ms may
//! come back as 900) and HDR histograms (fixed range and precision set up front) because
//! its error is relative to the value, whatever the distribution, and two sketches merge
//! exactly by adding their buckets' counts, so minute rows add up to hours and days with
//! no loss. `α` is 0.99 % here, inside the 1 % the README states with room for rounding.
//!
//! Percentiles are read the way PostgreSQL's `percentile_cont` computes them: the value at
//! the fractional rank `q (n − 1)`, interpolated between the two nearest ranks, each read
//! from its bucket, so the result stays within `α` of `percentile_cont` over the same rows.
//!
//! Bounds: latencies at or below [`MIN_INDEXED_MS`] (and negative ones) count as 0, those
//! above [`MAX_INDEXED_MS`] in the top bucket, NaN is not counted; so a sketch holds at
//! most 1,400 buckets, about 11 KiB in memory, whatever it is fed. Encoded (for the
//! `latency` column) a bucket takes two to four bytes.

use std::fmt;

/// The relative accuracy of every value read back.
pub const RELATIVE_ACCURACY: f64 = 0.0099;
/// Latencies at or below this many milliseconds (one microsecond) count as 0.
pub const MIN_INDEXED_MS: f64 = 1e-3;
/// Latencies above this many milliseconds (about 11.6 days) count in the top bucket.
pub const MAX_INDEXED_MS: f64 = 1e9;
/// The encoding's version, the first byte of an encoded sketch.
const FORMAT: u8 = 1;

/// `ln γ`.
fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// The bucket of a latency above [`MIN_INDEXED_MS`].
fn index_of(value: f64) -> i32 {
    let value = value.min(MAX_INDEXED_MS);
    // Bounded by the clamp: |ln x / ln γ| < 1,100.
    (value.ln() / ln_gamma()).ceil() as i32
}

/// The value a bucket reads back as.
fn value_of(index: i32) -> f64 {
    let gamma = ln_gamma().exp();
    2.0 * (f64::from(index) * ln_gamma()).exp() / (gamma + 1.0)
}

/// Why an encoded sketch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("latency sketch: {0}")]
pub struct DecodeError(&'static str);

/// A mergeable summary of latencies (see the module's documentation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    /// Latencies counted as 0.
    zero: u64,
    /// The index of `counts[0]`.
    offset: i32,
    /// Counts of consecutive buckets from `offset`.
    counts: Vec<u64>,
}

impl fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencySketch")
            .field("count", &self.count())
            .field("buckets", &self.counts.iter().filter(|&&c| c > 0).count())
            .finish()
    }
}

impl LatencySketch {
    /// An empty sketch.
    pub fn new() -> LatencySketch {
        LatencySketch::default()
    }

    /// Counts one latency in milliseconds (NaN is not counted).
    pub fn add(&mut self, value: f64) {
        self.add_count(value, 1);
    }

    fn add_count(&mut self, value: f64, count: u64) {
        if value.is_nan() {
            return;
        }
        if value <= MIN_INDEXED_MS {
            self.zero = self.zero.saturating_add(count);
            return;
        }
        self.add_to_bucket(index_of(value), count);
    }

    fn add_to_bucket(&mut self, index: i32, count: u64) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(count);
            return;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        }
        let at = (index - self.offset) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] = self.counts[at].saturating_add(count);
    }

    /// Adds every latency of `other` to this sketch.
    pub fn merge(&mut self, other: &LatencySketch) {
        self.zero = self.zero.saturating_add(other.zero);
        for (at, &count) in other.counts.iter().enumerate() {
            if count > 0 {
                self.add_to_bucket(other.offset + at as i32, count);
            }
        }
    }

    /// The latencies counted.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .fold(self.zero, |total, &count| total.saturating_add(count))
    }

    /// The value of the latency of 0-based rank `rank` (`rank < count`).
    fn value_at_rank(&self, rank: u64) -> f64 {
        if rank < self.zero {
            return 0.0;
        }
        let mut seen = self.zero;
        for (at, &count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if rank < seen {
                return value_of(self.offset + at as i32);
            }
        }
        self.counts
            .len()
            .checked_sub(1)
            .map_or(0.0, |last| value_of(self.offset + last as i32))
    }

    /// The `q` quantile (0 ≤ q ≤ 1) as `percentile_cont` computes it, within
    /// [`RELATIVE_ACCURACY`]; `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 || q.is_nan() {
            return None;
        }
        let position = q.clamp(0.0, 1.0) * (count - 1) as f64;
        let below = position.floor();
        let low = self.value_at_rank(below as u64);
        let high = self.value_at_rank(position.ceil() as u64);
        Some(low + (position - below) * (high - low))
    }

    /// The sketch as bytes: a format byte, the zero count, the index of the first bucket,
    /// then each bucket as the gap to the previous non-empty one and its count, all as
    /// LEB128 varints (zigzag for the signed index).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 2 * self.counts.len());
        out.push(FORMAT);
        put_varint(&mut out, self.zero);
        let mut previous = None;
        for (at, &count) in self.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let index = self.offset + at as i32;
            match previous {
                None => put_varint(&mut out, zigzag(index)),
                Some(previous) => put_varint(&mut out, (index - previous) as u64),
            }
            put_varint(&mut out, count);
            previous = Some(index);
        }
        out
    }

    /// Reads what [`LatencySketch::encode`] wrote; a sketch of a later format, or bytes
    /// that are not a sketch, are an error (never a panic, never a huge allocation).
    pub fn decode(bytes: &[u8]) -> Result<LatencySketch, DecodeError> {
        let mut sketch = LatencySketch::new();
        sketch.merge_encoded(bytes)?;
        Ok(sketch)
    }

    /// Adds the latencies of an encoded sketch to this one, without decoding it into a
    /// sketch of its own first.
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let (&format, mut rest) = bytes.split_first().ok_or(DecodeError("empty"))?;
        if format != FORMAT {
            return Err(DecodeError(
                "unknown format (written by a newer promptctl?)",
            ));
        }
        self.zero = self.zero.saturating_add(take_varint(&mut rest)?);
        let mut index: Option<i64> = None;
        while !rest.is_empty() {
            let step = take_varint(&mut rest)?;
            let next = match index {
                None => unzigzag(step),
                Some(previous) => previous.saturating_add(i64::try_from(step).unwrap_or(i64::MAX)),
            };
            let count = take_varint(&mut rest)?;
            let bucket = i32::try_from(next)
                .ok()
                .filter(|i| (MIN_INDEX..=MAX_INDEX).contains(i))
                .ok_or(DecodeError("bucket out of range"))?;
            self.add_to_bucket(bucket, count);
            index = Some(next);
        }
        Ok(())
    }
}

/// The lowest bucket a latency can land in (just above [`MIN_INDEXED_MS`]).
const MIN_INDEX: i32 = -700;
/// The highest bucket (that of [`MAX_INDEXED_MS`]).
const MAX_INDEX: i32 = 1_100;

fn zigzag(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(DecodeError("truncated"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError("varint longer than 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `percentile_cont` over sorted values.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        let position = q * (sorted.len() - 1) as f64;
        let below = position.floor() as usize;
        let above = position.ceil() as usize;
        sorted[below] + (position - below as f64) * (sorted[above] - sorted[below])
    }

    fn assert_close(sketch: &LatencySketch, values: &[f64]) {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&sorted, q);
            let got = sketch.quantile(q).expect("quantile");
            assert!(
                (got - want).abs() <= 0.01 * want.abs() + 1e-9,
                "q={q}: sketch {got}, exact {want}"
            );
        }
    }

    fn spread(n: usize, seed: u64) -> Vec<f64> {
        // A deterministic heavy-tailed spread from 0.05 ms to minutes.
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                0.05 * (u * 15.0).exp()
            })
            .collect()
    }

    #[test]
    fn quantiles_are_within_one_percent_of_percentile_cont() {
        for (n, seed) in [(1, 1), (2, 2), (3, 3), (10, 4), (1_000, 5), (100_000, 6)] {
            let values = spread(n, seed);
            let mut sketch = LatencySketch::new();
            values.iter().for_each(|&v| sketch.add(v));
            assert_close(&sketch, &values);
        }
    }

    #[test]
    fn merged_sketches_equal_one_sketch_of_all_values() {
        let values = spread(5_000, 9);
        let mut whole = LatencySketch::new();
        values.iter().for_each(|&v| whole.add(v));
        let mut merged = LatencySketch::new();
        for chunk in values.chunks(700) {
            let mut part = LatencySketch::new();
            chunk.iter().for_each(|&v| part.add(v));
            merged
                .merge_encoded(&part.encode())
                .expect("decodes its own encoding");
        }
        assert_eq!(merged, whole);
        assert_close(&merged, &values);
    }

    #[test]
    fn hostile_values_are_bounded() {
        let mut sketch = LatencySketch::new();
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -5.0,
            0.0,
            1e-300,
            f64::MAX,
            1.0,
        ] {
            sketch.add(v);
        }
        assert_eq!(sketch.count(), 7, "NaN is not counted");
        assert!(sketch.counts.len() <= (MAX_INDEX - MIN_INDEX) as usize + 1);
        assert_eq!(sketch.quantile(0.0), Some(0.0));
        let top = sketch.quantile(1.0).expect("top");
        assert!((top - MAX_INDEXED_MS).abs() <= 0.01 * MAX_INDEXED_MS);
        assert_eq!(LatencySketch::decode(&sketch.encode()), Ok(sketch));
    }

    #[test]
    fn bad_bytes_are_an_error() {
        for bytes in [
            &[][..],
            &[2, 0][..],
            &[1, 0x80][..],
            &[
                1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
            &[1, 0, 0x80, 0x80, 0x04, 1][..],
        ] {
            assert!(LatencySketch::decode(bytes).is_err(), "{bytes:?}");
        }
        assert_eq!(LatencySketch::decode(&[1, 3]).map(|s| s.count()), Ok(3));
    }

    #[test]
    fn an_empty_sketch_has_no_quantile() {
        assert_eq!(LatencySketch::new().quantile(0.5), None);
    }
}

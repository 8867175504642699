//! Preprocessing: bytes to the reference's pixel range, and the layouts of MNIST digits
//! (see [`ImageSet::from_mnist`](crate::ImageSet::from_mnist) and [`make_batch`](crate::make_batch)).

/// How an MNIST digit becomes a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MnistLayout {
    /// The reference's: zero-padded by 2 pixels to 32x32, the grey channel repeated to 3
    /// channels: `3 x 32 x 32`.
    #[default]
    Reference,
    /// One grey channel, padded to `1 x 32 x 32`.
    Grey32,
    /// One grey channel as stored: `1 x 28 x 28`.
    Grey28,
}

impl MnistLayout {
    /// The input shape `[C, H, W]`.
    pub fn shape(self) -> [usize; 3] {
        match self {
            Self::Reference => [3, 32, 32],
            Self::Grey32 => [1, 32, 32],
            Self::Grey28 => [1, 28, 28],
        }
    }
}

/// A byte as the reference feeds it to the flow: `v / 255 - 0.5`, in `[-0.5, 0.5]`
/// ([`quantize_to_unit`] at 8 bits).
pub fn byte_to_unit(v: u8) -> f32 {
    quantize_to_unit(v, 8)
}

/// The bit depths [`quantize_to_unit`] takes.
pub const BIT_DEPTHS: std::ops::RangeInclusive<u32> = 1..=8;

/// A byte quantised to `bits` bits (Glow's `n_bits_x`) and scaled to `[-0.5, 0.5]`:
/// `k = floor(v / 2^(8 - bits))`, one of `2^bits` levels, then `k / (2^bits - 1) - 0.5`.
///
/// Glow scales by `1 / 2^bits` instead, which at 8 bits is not the reference's `v / 255`;
/// dividing by `2^bits - 1` keeps the reference's numbers exactly at 8 bits and spans
/// `[-0.5, 0.5]` at every depth. The dequantisation noise `U(0, 1/2^bits)` then covers bins
/// that never overlap (their spacing `1/(2^bits - 1)` exceeds their width), so the
/// objective (which starts at `-D ln 2^bits`) is a discrete likelihood at every depth.
///
/// # Panics
/// If `bits` is not in `1..=8` ([`BIT_DEPTHS`]; a model's configuration checks it).
pub fn quantize_to_unit(v: u8, bits: u32) -> f32 {
    assert!(
        BIT_DEPTHS.contains(&bits),
        "bit depth {bits} is not in 1..=8"
    );
    let k = v >> (8 - bits);
    let top = ((1u32 << bits) - 1) as f32;
    k as f32 / top - 0.5
}

/// The byte of a model value `x` in `[-0.5, 0.5]` at `bits` bits: the level `k` whose
/// dequantisation bin `[k / (2^bits - 1) - 0.5, k / (2^bits - 1) - 0.5 + 1 / 2^bits)` has
/// the nearest centre (clamped to `0..2^bits`), as the byte `k * 2^(8 - bits)` that
/// [`quantize_to_unit`] maps back to `k`. The inverse of quantising and dequantising: every
/// value of a byte's bin gives that byte back (at 8 bits, the byte itself). NaN gives 0.
///
/// # Panics
/// If `bits` is not in `1..=8` ([`BIT_DEPTHS`]).
pub fn unit_to_byte(x: f32, bits: u32) -> u8 {
    assert!(
        BIT_DEPTHS.contains(&bits),
        "bit depth {bits} is not in 1..=8"
    );
    let top = ((1u32 << bits) - 1) as f32;
    let half_bin = 0.5 / (1u32 << bits) as f32;
    let k = ((x + 0.5 - half_bin) * top).round().clamp(0.0, top);
    // `as` maps NaN to 0.
    (k as u8) << (8 - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_of_a_bin_gives_its_byte_back() {
        for bits in BIT_DEPTHS {
            let width = 1.0 / (1u32 << bits) as f32;
            for v in 0..=255u8 {
                let level = (v >> (8 - bits)) << (8 - bits);
                for u in [0.0, 0.25, 0.5, 0.999] {
                    let x = quantize_to_unit(v, bits) + u * width;
                    assert_eq!(unit_to_byte(x, bits), level, "byte {v}, {bits} bits, u {u}");
                }
            }
        }
        assert_eq!(unit_to_byte(-3.0, 8), 0);
        assert_eq!(unit_to_byte(3.0, 5), 248);
        assert_eq!(unit_to_byte(f32::NAN, 8), 0);
    }

    #[test]
    fn n_bit_pixels_by_hand() {
        // 5 bits: 32 levels, v / 8 rounded down, over 31.
        for (v, k) in [(0u8, 0u32), (7, 0), (8, 1), (100, 12), (255, 31)] {
            assert_eq!(quantize_to_unit(v, 5), k as f32 / 31.0 - 0.5, "byte {v}");
        }
        // 1 bit: two levels, the extremes.
        assert_eq!(quantize_to_unit(127, 1), -0.5);
        assert_eq!(quantize_to_unit(128, 1), 0.5);
        // 8 bits is the reference's v / 255 - 0.5, bit for bit.
        for v in 0..=255u8 {
            assert_eq!(
                quantize_to_unit(v, 8).to_bits(),
                (v as f32 / 255.0 - 0.5).to_bits()
            );
        }
    }
}

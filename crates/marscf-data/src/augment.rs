//! The reference's CIFAR-10 training augmentation.

use rand::{Rng, RngExt};

/// Edge-replication padding of the random shift.
pub const SHIFT_PAD: usize = 3;

/// One draw of the augmentation: a shift of the crop window and a horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftFlip {
    /// Column of the crop window's left edge in the padded image (`0..=6`).
    pub x: usize,
    /// Row of the crop window's top edge in the padded image (`0..=6`).
    pub y: usize,
    /// Whether to mirror the crop left to right.
    pub flip: bool,
}

impl ShiftFlip {
    /// The identity (crop at the centre, no flip).
    pub const IDENTITY: Self = Self {
        x: SHIFT_PAD,
        y: SHIFT_PAD,
        flip: false,
    };

    /// A random draw as the reference makes it: `s` uniform in `0..=5`; with probability
    /// 1/2 the window is at `(x = s, y = 3)`, otherwise at `(x = 3, y = s)`; then a flip
    /// with probability 1/2.
    pub fn sample(rng: &mut impl Rng) -> Self {
        let shift = rng.random_range(0..=5);
        let (x, y) = if rng.random_bool(0.5) {
            (shift, SHIFT_PAD)
        } else {
            (SHIFT_PAD, shift)
        };
        Self {
            x,
            y,
            flip: rng.random_bool(0.5),
        }
    }

    /// Applies the draw to one `[C, H, W]` image: pad by 3 pixels replicating the edge,
    /// crop `H x W` at `(x, y)`, mirror if `flip`. Writes into `out` (`C H W` bytes).
    pub fn apply(&self, image: &[u8], shape: [usize; 3], out: &mut [u8]) {
        let [c, h, w] = shape;
        let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        for ch in 0..c {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            for row in 0..h {
                let src_row = clamp((row + self.y) as isize - SHIFT_PAD as isize, h);
                for col in 0..w {
                    let out_col = if self.flip { w - 1 - col } else { col };
                    let src_col = clamp((col + self.x) as isize - SHIFT_PAD as isize, w);
                    out[ch * h * w + row * w + out_col] = plane[src_row * w + src_col];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1x4x4 image with distinct values `10 * row + col`.
    fn image() -> Vec<u8> {
        (0..16).map(|i| (10 * (i / 4) + i % 4) as u8).collect()
    }

    fn apply(t: ShiftFlip) -> Vec<u8> {
        let mut out = vec![0; 16];
        t.apply(&image(), [1, 4, 4], &mut out);
        out
    }

    #[test]
    fn identity_is_identity() {
        assert_eq!(apply(ShiftFlip::IDENTITY), image());
    }

    #[test]
    fn every_shift_matches_the_padded_crop() {
        // Padded image value at padded (r, c): original at (clamp(r-3), clamp(c-3)).
        let padded = |r: usize, c: usize| {
            let r = (r as isize - 3).clamp(0, 3) as u8;
            let c = (c as isize - 3).clamp(0, 3) as u8;
            10 * r + c
        };
        for s in 0..=5 {
            for (x, y) in [(s, 3), (3, s)] {
                for flip in [false, true] {
                    let out = apply(ShiftFlip { x, y, flip });
                    for row in 0..4 {
                        for col in 0..4 {
                            let src_col = if flip { 3 - col } else { col };
                            assert_eq!(
                                out[row * 4 + col],
                                padded(row + y, src_col + x),
                                "x={x} y={y} flip={flip}"
                            );
                        }
                    }
                }
            }
        }
        // Concretely: shift 0 along x puts the left edge column twice... three times.
        assert_eq!(
            &apply(ShiftFlip {
                x: 0,
                y: 3,
                flip: false
            })[..4],
            &[0, 0, 0, 0]
        );
        assert_eq!(
            &apply(ShiftFlip {
                x: 5,
                y: 3,
                flip: false
            })[..4],
            &[2, 3, 3, 3]
        );
        assert_eq!(
            &apply(ShiftFlip {
                x: 3,
                y: 3,
                flip: true
            })[..4],
            &[3, 2, 1, 0]
        );
    }

    #[test]
    fn draws_cover_the_reference_distribution() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let draws: Vec<_> = (0..4000).map(|_| ShiftFlip::sample(&mut rng)).collect();
        assert!(draws.iter().all(|d| d.x == 3 || d.y == 3));
        assert!(draws.iter().all(|d| d.x <= 5 && d.y <= 5));
        let flips = draws.iter().filter(|d| d.flip).count();
        assert!((1800..2200).contains(&flips));
        for s in 0..=5 {
            assert!(draws.iter().any(|d| d.x == s) && draws.iter().any(|d| d.y == s));
        }
    }
}

//! The FID fixtures (`fixtures/fid`, made by `make_fid_fixture.py` with pytorch-fid) and the
//! formula that rebuilds their large inputs bit for bit.

use std::path::PathBuf;

/// The fixture file `name` of `fixtures/fid`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fid")
        .join(name)
}

/// FNV-1a, 64 bits, of `name`'s bytes.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The script's `uniform(name, n)`: element `i` is the top 24 bits of SplitMix64's output
/// for `fnv1a(name) + i`, over 2^24 (exact in f32 and f64).
pub fn uniform(name: &str, n: usize) -> Vec<f64> {
    let base = fnv1a(name);
    (0..n as u64)
        .map(|i| {
            let mut z = base.wrapping_add(i).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f64 / (1u64 << 24) as f64
        })
        .collect()
}

/// The script's `feature_set(name, n, shift)`: `n x 2048` row-major, uniform noise in
/// `[-1, 1)` plus half a rank-16 mix, plus `shift`.
pub fn feature_set(name: &str, n: usize, shift: f64) -> Vec<f64> {
    let noise = uniform(&format!("{name}/noise"), n * 2048);
    let z = uniform(&format!("{name}/z"), n * 16);
    let mix = uniform(&format!("{name}/mix"), 16 * 2048);
    (0..n * 2048)
        .map(|at| {
            let (i, j) = (at / 2048, at % 2048);
            let mixed: f64 = (0..16)
                .map(|k| (2.0 * z[i * 16 + k] - 1.0) * (2.0 * mix[k * 2048 + j] - 1.0))
                .sum();
            2.0 * noise[at] - 1.0 + mixed * 0.5 + shift
        })
        .collect()
}

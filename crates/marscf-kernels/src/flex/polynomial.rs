//! Branch-free `exp`, `ln`, `ln_1p`, `sigmoid` and `tanh` on `f32` that the compiler
//! vectorises: Cephes' single-precision polynomials, within 1 to 3 ulp of the standard
//! library's, special values as the standard library's (the unit tests state each bound);
//! and softmax's `exp` of non-positive arguments, which flushes subnormal results to 0.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split into a part exact in few bits and the rest (Cody-Waite reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding it rounds an `f32` of magnitude below `2^22` to an integer.
const ROUND: f32 = 12_582_912.0;
/// `2^23 + 127`: adding it to an integral `n` puts the exponent bits of `2^n` at the bottom.
const BIASED: f32 = 8_388_735.0;

/// `e^x`, as `f32::exp` (within 2 ulp, subnormal results included): NaN gives NaN, `-∞`
/// and `x` below about `-103.97` give 0, `x` above about `88.72` and `∞` give `∞`.
///
/// `x` (clamped to `[-104, 89]`, beyond which the result rounds to 0 or overflows anyway;
/// NaN passes the clamp) is split as `x = n ln 2 + r`, `|r| <= ln 2 / 2`; then
/// `e^x = e^r 2^{n₁} 2^{n - n₁}` with `n₁ ≈ n / 2`: two factors, each a normal power of
/// two for every `n` in `[-150, 128]`, so that the product underflows to subnormals and
/// overflows to `∞` as the exact result rounds.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let (er, n) = exp_reduced(x.clamp(-104.0, 89.0));
    let half = (n * 0.5 + ROUND) - ROUND;
    er * pow2(half) * pow2(n - half)
}

/// The least `x` whose `e^x` is a normal `f32`: `ln f32::MIN_POSITIVE`, rounded up.
const LEAST_NORMAL_EXP: f32 = -87.336_54;

/// `e^x` for `x <= 0`, as [`exp`] where that is a normal number (bit for bit), else 0: the
/// subnormal results, below `1.2e-38`, are flushed. NaN gives NaN. Softmax's exponent,
/// `x - max x`, is never positive; one power of two, not two, then suffices.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let (er, n) = exp_reduced(x.clamp(LEAST_NORMAL_EXP, 0.0));
    // All ones but where `x` is below the range, NaN included (a mask, not a branch, so
    // that the loop vectorises).
    let kept = u32::from(x < LEAST_NORMAL_EXP).wrapping_sub(1);
    f32::from_bits((er * pow2(n)).to_bits() & kept)
}

/// `x = n ln 2 + r`, `|r| <= ln 2 / 2`: `(e^r, n)` (Cephes' polynomial for `e^r`), for
/// `|x|` below `2^21`.
#[inline(always)]
fn exp_reduced(x: f32) -> (f32, f32) {
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    (p * r * r + r + 1.0, n)
}

/// `2^n` for an integral `n` in `[-126, 127]`: `n + 127` lands in the low mantissa bits of
/// `2^23 + n + 127`; shifted up, it is the exponent field of `2^n`. (A NaN `n` gives some
/// number, which the NaN it multiplies keeps NaN.)
#[inline(always)]
fn pow2(n: f32) -> f32 {
    f32::from_bits((n + BIASED).to_bits() << 23)
}

/// `ln x`, as `f32::ln` (within 1 ulp, subnormal `x` included): NaN and `x < 0` give NaN,
/// `±0` gives `-∞`, `∞` gives `∞`.
///
/// `x = m 2^e` with `m` in `[√½, √2)` (a subnormal `x` first scaled by `2^23`, exactly),
/// then Cephes' polynomial in `m - 1`; the special values are selected at the end.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let subnormal = x < f32::MIN_POSITIVE;
    let scaled = if subnormal { x * 8_388_608.0 } else { x };
    let bits = scaled.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - if subnormal { 126 + 23 } else { 126 };
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= small as i32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_5e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    let e = e as f32;
    let y = y * m * z + LN2_LO * e - 0.5 * z;
    let r = m + y + LN2_HI * e;
    let r = if x == f32::INFINITY { x } else { r };
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    // False for NaN and negative x.
    if x >= 0.0 { r } else { f32::NAN }
}

/// `ln(1 + u)`, as `f32::ln_1p` (within 2 ulp), accurate where `u` is small:
/// `ln(w) u / (w - 1)` with `w = 1 + u` rounded (the correction cancels the rounding of
/// `w`), `u` where `w = 1`, `∞` for `u = ∞`; `-∞` for `u = -1`, NaN below and for NaN.
#[inline(always)]
pub fn ln_1p(u: f32) -> f32 {
    let w = 1.0 + u;
    let d = w - 1.0;
    let r = ln(w) * (u / d);
    let r = if u == f32::INFINITY { u } else { r };
    if d == 0.0 { u } else { r }
}

/// `σ(x) = 1 / (1 + e^-x)` (within 3 ulp; NaN gives NaN). Below about `x = -88.72`, where
/// `e^-x` overflows, it is 0 instead of a subnormal under `2^-126`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x)`, as `f32::tanh` (within 3 ulp; NaN gives NaN, `±∞` gives `±1`, `-0` gives
/// `-0`): an odd polynomial for `|x| < 0.625`, `1 - 2 / (e^{2|x|} + 1)` with the sign of `x`
/// beyond.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    // The sign of x kept for x = -0, where the sum would round to +0.
    let small = (p * z * x + x).copysign(x);
    let large = (1.0 - 2.0 / (exp(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 { small } else { large }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-4000..=4000).map(|i| i as f32 * 0.01)
    }

    /// The distance between `a` and `b` in units in the last place (subnormals included):
    /// 0 for equal values (either zero against the other, equal infinities) and for two NaNs,
    /// `u64::MAX` for a NaN or an infinity against anything else.
    fn ulps(a: f32, b: f32) -> u64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0
            } else {
                u64::MAX
            };
        }
        if a == b {
            return 0;
        }
        if a.is_infinite() || b.is_infinite() {
            return u64::MAX;
        }
        // The bit patterns, ordered as the values are (negative numbers mirrored below 0).
        let ordered = |x: f32| {
            let i = i64::from(x.to_bits() as i32);
            if i < 0 { i64::from(i32::MIN) - i } else { i }
        };
        ordered(a).abs_diff(ordered(b))
    }

    /// The special inputs (NaN, zeros, negatives, subnormals, the extremes, infinities), then
    /// a sweep over every exponent of both signs (one bit pattern in 4099).
    fn inputs() -> impl Iterator<Item = f32> {
        let special = [
            f32::NAN,
            -f32::NAN,
            0.0,
            -0.0,
            -1.0,
            -1e-30,
            1e-40,
            -1e-40,
            f32::from_bits(1),
            f32::MIN_POSITIVE,
            f32::MIN_POSITIVE * 0.999,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0,
            -87.3,
            88.3,
            88.72,
            -88.72,
            -88.7229,
            -89.0,
            88.8,
            -103.0,
            -104.5,
        ];
        special
            .into_iter()
            .chain((0..=u32::MAX).step_by(4099).map(f32::from_bits))
    }

    /// Each polynomial against the standard library over [`inputs`], within a stated number
    /// of ulps: `exp` 2 and `ln` 1 of `f32::exp` and `f32::ln`, `ln_1p` 2 of `f32::ln_1p`,
    /// `tanh` 3 of `f32::tanh`, `sigmoid` 3 of `1 / (1 + e^-x)` in `f64` rounded, except
    /// where `e^-x` overflows (`x` below about `-88.72`): there `sigmoid` is 0 instead of a
    /// subnormal below `2^-126`. NaN gives NaN, and the infinities and zeros what `std`
    /// gives (the sign of a zero included).
    #[test]
    fn special_and_swept_inputs_match_std() {
        /// A function of ours, its reference, and the bound in ulps between them.
        type Case = (&'static str, fn(f32) -> f32, fn(f32) -> f32, u64);
        let cases: [Case; 5] = [
            ("exp", exp, f32::exp, 2),
            ("ln", ln, f32::ln, 1),
            ("ln_1p", ln_1p, f32::ln_1p, 2),
            ("tanh", tanh, f32::tanh, 3),
            (
                "sigmoid",
                sigmoid,
                |x| (1.0 / (1.0 + (-f64::from(x)).exp())) as f32,
                3,
            ),
        ];
        for (name, ours, std, bound) in cases {
            for x in inputs() {
                let (got, want) = (ours(x), std(x));
                if name == "sigmoid" && exp(-x) == f32::INFINITY {
                    assert!(
                        got == 0.0 && want < f32::MIN_POSITIVE,
                        "sigmoid({x:e}) = {got:e}, std {want:e}"
                    );
                    continue;
                }
                assert!(
                    ulps(got, want) <= bound,
                    "{name}({x:e}) = {got:e}, std {want:e}: {} ulps, bound {bound}",
                    ulps(got, want)
                );
                if want == 0.0 {
                    assert_eq!(
                        got.is_sign_negative(),
                        want.is_sign_negative(),
                        "{name}({x:e}) = {got:e}, std {want:e}: the sign of zero"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_nonpositive_is_exp_or_a_flushed_subnormal() {
        let below = f32::from_bits(LEAST_NORMAL_EXP.to_bits() + 1);
        let xs = (-12_000..=0).map(|i| i as f32 * 0.01);
        for x in xs.chain([LEAST_NORMAL_EXP, below, -0.0, f32::NEG_INFINITY]) {
            let (got, want) = (exp_nonpositive(x), exp(x));
            if want >= f32::MIN_POSITIVE {
                assert_eq!(got.to_bits(), want.to_bits(), "exp_nonpositive({x})");
            } else {
                assert_eq!(got, 0.0, "exp_nonpositive({x}), exp {want}");
            }
        }
        assert!(exp(LEAST_NORMAL_EXP) >= f32::MIN_POSITIVE);
        assert!(exp(below) < f32::MIN_POSITIVE);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        for x in grid().chain([-87.0, -50.0, 50.0, 88.0]) {
            let (got, want) = (exp(x), x.exp());
            assert!(
                ((got - want) / want).abs() < 4.0 * f32::EPSILON,
                "exp({x}) = {got}, libm {want}"
            );
        }
    }

    #[test]
    fn ln_is_within_a_few_ulp_of_libm() {
        let mut x = 1e-30f32;
        while x < 1e30 {
            for y in [x, x * 1.37, x * 2.9, 1.0 + x.min(1.0) * 1e-3] {
                let want = (y as f64).ln();
                let got = ln(y) as f64;
                assert!(
                    (got - want).abs() <= 2.5e-7 * want.abs() + 1e-8,
                    "ln({y}) = {got}, want {want}"
                );
            }
            x *= 1.9;
        }
        assert_eq!(ln(1.0), 0.0);
        let mut u = 1e-30f32;
        while u < 1e3 {
            let want = (u as f64).ln_1p();
            let got = ln_1p(u) as f64;
            assert!(
                (got - want).abs() <= 4e-7 * want,
                "ln_1p({u}) = {got}, want {want}"
            );
            u *= 1.7;
        }
    }

    #[test]
    fn sigmoid_and_tanh_match_libm() {
        for x in grid() {
            let want = 1.0 / (1.0 + (-x as f64).exp());
            assert!(
                (sigmoid(x) as f64 - want).abs() <= 4e-7 * want,
                "sigmoid({x})"
            );
            let want = (x as f64).tanh();
            assert!(
                (tanh(x) as f64 - want).abs() <= 4e-7 * want.abs().max(1e-30),
                "tanh({x}) = {}, want {want}",
                tanh(x)
            );
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
    }
}

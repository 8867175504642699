//! The runtime choice of the widest instruction set for the loops of our kernels.

/// The instruction sets [`with_widest_simd`] compiles its body for, widest first.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Simd {
    /// AVX-512 (F, VL, DQ, BW) with AVX2 and FMA: 512-bit registers, 16 `f32`.
    Avx512,
    /// AVX2 and FMA: 256-bit registers, 8 `f32`.
    Avx2Fma,
    /// The baseline target.
    Baseline,
}

/// The widest of [`Simd`] the processor has (checked once).
#[cfg(target_arch = "x86_64")]
fn widest() -> Simd {
    use std::arch::is_x86_feature_detected as has;
    use std::sync::OnceLock;
    static WIDEST: OnceLock<Simd> = OnceLock::new();
    *WIDEST.get_or_init(|| {
        let avx2_fma = has!("avx2") && has!("fma");
        let avx512 = has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw");
        match (avx2_fma, avx512) {
            (true, true) => Simd::Avx512,
            (true, false) => Simd::Avx2Fma,
            _ => Simd::Baseline,
        }
    })
}

/// Runs `body` compiled for AVX-512 or else AVX2 and FMA, the widest the processor has,
/// else for the baseline target. `body` must be `#[inline(always)]` all the way down for the
/// wider instructions to reach its loops, the closures it passes on included: a closure
/// compiles for the features of the function it is written in, so one left as a call (or a
/// function item passed as `impl Fn`, called through a shim) runs the baseline's code.
#[inline(always)]
pub fn with_widest_simd<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match widest() {
        Simd::Avx512 => {
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
            unsafe fn avx512<R>(body: impl FnOnce() -> R) -> R {
                body()
            }
            // SAFETY: the processor supports these features (checked by `widest`).
            return unsafe { avx512(body) };
        }
        Simd::Avx2Fma => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2_fma<R>(body: impl FnOnce() -> R) -> R {
                body()
            }
            // SAFETY: the processor supports AVX2 and FMA (checked by `widest`).
            return unsafe { avx2_fma(body) };
        }
        Simd::Baseline => {}
    }
    body()
}

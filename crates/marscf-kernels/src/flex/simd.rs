//! The runtime choice of the widest instruction set for the loops of our kernels.

/// Runs `body` compiled for AVX2 and FMA when the processor has them (checked once), else
/// for the baseline target. `body` must be `#[inline(always)]` all the way down for the
/// wider instructions to reach its loops.
#[inline(always)]
pub fn with_widest_simd<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX2_FMA: OnceLock<bool> = OnceLock::new();
        let wide = *AVX2_FMA.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        });
        if wide {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn wide<R>(body: impl FnOnce() -> R) -> R {
                body()
            }
            // SAFETY: the processor supports AVX2 and FMA (checked above).
            return unsafe { wide(body) };
        }
    }
    body()
}

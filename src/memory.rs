//! The host allocator's policy for tensor buffers.

/// The glibc allocator settings that [`keep_freed_memory`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreedMemoryPolicy {
    /// Blocks of at least this many bytes get a mapping of their own, unmapped when freed
    /// (glibc's `M_MMAP_THRESHOLD`); smaller ones come from the heap and are reused.
    pub mmap_threshold: usize,
    /// Free memory at the top of the heap beyond this many bytes goes back to the kernel
    /// (`M_TRIM_THRESHOLD`).
    pub trim_threshold: usize,
}

/// glibc refused an allocator setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocatorError {
    /// `mallopt(parameter, value)` returned 0 for every value tried (the last is named).
    #[error(
        "glibc refused mallopt({parameter}, {value}): freed tensor buffers go back to the \
         kernel and are faulted in again (slower, not wrong)"
    )]
    Rejected {
        /// `M_MMAP_THRESHOLD` or `M_TRIM_THRESHOLD`.
        parameter: &'static str,
        /// The last value refused.
        value: i32,
    },
}

/// Tells glibc's allocator to keep freed memory in the process for reuse: blocks below
/// 1 GiB come from the heap instead of their own mappings, and the heap is never trimmed.
/// Flex allocates every tensor afresh, and by default each large freed buffer goes back
/// to the kernel, so the next one of that size is faulted in and zeroed page by page
/// (docs/performance.md has the A/B).
///
/// glibc before 2.35 refuses an mmap threshold above `HEAP_MAX_SIZE / 2` (32 MiB on 64-bit);
/// there the threshold is 32 MiB. Every `mallopt` is checked: a refusal is an
/// [`AllocatorError`] (the `marscf` binary prints it as a warning and runs on). Returns the
/// settings made, or `None` on other C libraries, where it does nothing. Process-wide;
/// call it at the start of `main`.
pub fn keep_freed_memory() -> Result<Option<FreedMemoryPolicy>, AllocatorError> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters, under glibc's own arena lock.
        glibc::apply(|parameter, value| unsafe { libc::mallopt(parameter, value) }).map(Some)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    Ok(None)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use libc::{M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, c_int};

    use super::{AllocatorError, FreedMemoryPolicy};

    /// The mmap threshold asked for first.
    pub(super) const MMAP_THRESHOLD: c_int = 1 << 30;
    /// The largest mmap threshold glibc before 2.35 accepts: `HEAP_MAX_SIZE / 2`, which is
    /// `DEFAULT_MMAP_THRESHOLD_MAX` (`4 MiB * sizeof(long)` on 64-bit, 512 KiB on 32-bit).
    pub(super) const MMAP_THRESHOLD_OLD_GLIBC: c_int = if cfg!(target_pointer_width = "64") {
        32 << 20
    } else {
        512 << 10
    };
    /// No trimming.
    pub(super) const TRIM_THRESHOLD: c_int = c_int::MAX;

    /// The policy through `mallopt` (glibc's, or a stand-in in tests), which returns 1 on
    /// success and 0 on error.
    ///
    /// The mmap threshold goes first, and a refused one stops there: setting
    /// `M_TRIM_THRESHOLD` also turns off glibc's dynamic mmap threshold, so after a refused
    /// mmap threshold it would pin that at its 128 KiB default, and every larger block would
    /// be mapped and unmapped again at each allocation (what the earlier version of this
    /// call did on glibc 2.34 and older).
    pub(super) fn apply(
        mut mallopt: impl FnMut(c_int, c_int) -> c_int,
    ) -> Result<FreedMemoryPolicy, AllocatorError> {
        let mmap_threshold = [MMAP_THRESHOLD, MMAP_THRESHOLD_OLD_GLIBC]
            .into_iter()
            .find(|&value| mallopt(M_MMAP_THRESHOLD, value) == 1)
            .ok_or(AllocatorError::Rejected {
                parameter: "M_MMAP_THRESHOLD",
                value: MMAP_THRESHOLD_OLD_GLIBC,
            })?;
        if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1 {
            return Err(AllocatorError::Rejected {
                parameter: "M_TRIM_THRESHOLD",
                value: TRIM_THRESHOLD,
            });
        }
        Ok(FreedMemoryPolicy {
            mmap_threshold: mmap_threshold as usize,
            trim_threshold: TRIM_THRESHOLD as usize,
        })
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::cell::RefCell;

    use libc::{M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, c_int};

    use super::glibc::{MMAP_THRESHOLD, MMAP_THRESHOLD_OLD_GLIBC, TRIM_THRESHOLD, apply};
    use super::*;

    /// A `mallopt` that records its calls in `calls` and answers with `accept`.
    fn recording<'a>(
        calls: &'a RefCell<Vec<(c_int, c_int)>>,
        accept: impl Fn(c_int, c_int) -> bool + 'a,
    ) -> impl FnMut(c_int, c_int) -> c_int + 'a {
        move |parameter, value| {
            calls.borrow_mut().push((parameter, value));
            c_int::from(accept(parameter, value))
        }
    }

    #[test]
    fn glibc_before_2_35_gets_its_largest_mmap_threshold_before_the_trim_threshold() {
        // glibc <= 2.34: `M_MMAP_THRESHOLD` above HEAP_MAX_SIZE / 2 returns 0.
        let calls = RefCell::new(Vec::new());
        let policy = apply(recording(&calls, |parameter, value| {
            parameter != M_MMAP_THRESHOLD || value <= MMAP_THRESHOLD_OLD_GLIBC
        }))
        .unwrap();
        assert_eq!(policy.mmap_threshold, MMAP_THRESHOLD_OLD_GLIBC as usize);
        assert_eq!(
            *calls.borrow(),
            [
                (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_MMAP_THRESHOLD, MMAP_THRESHOLD_OLD_GLIBC),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            ]
        );
    }

    #[test]
    fn a_refused_mmap_threshold_is_an_error_and_leaves_the_trim_threshold_alone() {
        // Setting M_TRIM_THRESHOLD also turns off glibc's dynamic mmap threshold: after a
        // refused mmap threshold it would pin that at 128 KiB, worse than the default.
        let calls = RefCell::new(Vec::new());
        assert_eq!(
            apply(recording(&calls, |parameter, _| parameter != M_MMAP_THRESHOLD)),
            Err(AllocatorError::Rejected {
                parameter: "M_MMAP_THRESHOLD",
                value: MMAP_THRESHOLD_OLD_GLIBC,
            })
        );
        assert!(calls.borrow().iter().all(|&(p, _)| p != M_TRIM_THRESHOLD));
        let calls = RefCell::new(Vec::new());
        assert_eq!(
            apply(recording(&calls, |parameter, _| parameter != M_TRIM_THRESHOLD)),
            Err(AllocatorError::Rejected {
                parameter: "M_TRIM_THRESHOLD",
                value: TRIM_THRESHOLD,
            })
        );
    }

    #[test]
    fn this_glibc_accepts_the_policy() {
        let policy = keep_freed_memory().unwrap().unwrap();
        assert!(policy.mmap_threshold >= MMAP_THRESHOLD_OLD_GLIBC as usize);
        assert_eq!(policy.trim_threshold, TRIM_THRESHOLD as usize);
    }
}

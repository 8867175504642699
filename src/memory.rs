//! The host allocator's policy for tensor buffers.

/// Tells glibc's allocator to keep freed memory in the process for reuse: blocks up to
/// 1 GiB come from the heap instead of their own mappings, and the heap is trimmed only
/// when more than 2 GiB lie free at its top. Flex allocates every tensor afresh, and by default each large freed
/// buffer goes back to the kernel, so the next one of that size is faulted in and zeroed
/// page by page (docs/performance.md has the A/B). Process-wide; call it at the start of
/// `main`, before other threads exist. Does nothing on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two allocator parameters; the caller runs it before any
    // other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

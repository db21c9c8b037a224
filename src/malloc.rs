//! glibc malloc tuning, set once per process for the work it does. Other allocators and
//! platforms are left as they are.

/// Caps glibc's arenas at the number of worker threads (at least 2). By default a thread
/// that meets contention gets an arena of its own, up to 8 per core, and memory freed
/// into an arena stays there: the streaming stages allocate batches on one tokio worker
/// and free them on another, so their resident memory grew over a run. Measured on
/// `mathlake dedup` of 3.7 GB of text under `--memory-limit 512M`, 2 threads: peak RSS
/// 561 MiB with the default arenas, 349 MiB with two, at the same speed; the trainer's
/// CPU step ran at the same speed with two as well (BENCHMARKS.md).
pub fn share_arenas(threads: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; any values are valid.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, threads.clamp(2, i32::MAX as usize) as i32);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = threads;
}

/// A training step allocates and frees the same buffers of up to hundreds of MB each time.
/// glibc returns every free above its thresholds to the OS, and the next step faults the
/// pages back in: measured here, that was a third of a step (BENCHMARKS.md). Raising the
/// thresholds to their maximum keeps those buffers in the heap for reuse.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; any values are valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

//! Allocator tuning: keeps artifact-sized buffers from piling up.
//!
//! glibc's malloc serves an allocation of 128 KiB or more with its own
//! `mmap`, returned to the system on `free`, but after the first such free it
//! raises that threshold (up to 32 MiB), so later artifact buffers come from
//! its heaps, which fragment and keep their peak. With 64 bounties of 1 MiB
//! in flight the engine peaked at 158 MB that way, and at 100 MB with the
//! threshold pinned (see the benchmark's memory run). Other allocators and
//! platforms are left alone.

/// Pins glibc's mmap threshold at its default, 128 KiB. Call once, first.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt takes no pointers and only changes malloc's
        // parameters, under glibc's own lock: it is sound at any time.
        let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        debug_assert_eq!(applied, 1, "mallopt(M_MMAP_THRESHOLD) failed");
    }
}

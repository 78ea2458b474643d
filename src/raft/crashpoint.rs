//! Crash points on the storage path, for the crash tests (tests/crash.rs, issue 11 §5): in a
//! debug build the process aborts, as a kill -9 would stop it, at the point named by
//! `RAFTINEL_CRASH_AT`. Release builds compile them to nothing.

/// Aborts the process here if `RAFTINEL_CRASH_AT` names `point` (debug builds only).
#[cfg(debug_assertions)]
pub fn hit(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("RAFTINEL_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_point: &str) {}

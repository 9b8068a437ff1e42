//! Wall time of each stage of a short process (model load, tokenizer, weights, …), for finding
//! where a `bitseek search` process spends its time: set `BITSEEK_TIMINGS=1` and the binary prints
//! the stages to stderr when it is done. Off (one relaxed load per stage) when the variable is
//! unset, so the stages can stay timed in the load path.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable that turns the timings on.
pub const TIMINGS_ENV: &str = "BITSEEK_TIMINGS";

static STAGES: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

/// Whether `BITSEEK_TIMINGS` is set to something other than empty or `0` (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(TIMINGS_ENV).is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Records `stage` as having taken the time since `start`, when timings are on.
pub fn record(stage: &'static str, start: Instant) {
    if enabled() {
        let took = start.elapsed();
        STAGES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((stage, took));
    }
}

/// Times `f` as `stage`.
pub fn time<T>(stage: &'static str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    record(stage, start);
    out
}

/// The stages recorded so far, in the order they finished; empties the record.
pub fn take() -> Vec<(&'static str, Duration)> {
    std::mem::take(&mut *STAGES.lock().unwrap_or_else(|e| e.into_inner()))
}

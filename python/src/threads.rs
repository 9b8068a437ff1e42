//! `threads=N`: run a call on N threads, `None` on all cores.
//!
//! `threads=1` runs on the calling thread itself: each Python thread gets its own one-thread rayon
//! pool made of that thread (`use_current_thread`), so two Python threads searching with
//! `threads=1` use two cores, and a single-query call pays no hand-off to a pool worker. (rayon
//! keeps such a pool's registry for the life of the process: one small allocation per Python
//! thread that ever asks for `threads=1`.) Larger pools are made once per size and shared.
//! A thread that owns a one-thread pool would run every rayon call there, so `None` then goes
//! to a shared all-cores pool instead of rayon's global one.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyResult;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn shared(threads: Option<usize>) -> PyResult<Arc<ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<Option<usize>, Arc<ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = pools.get(&threads) {
        return Ok(p.clone());
    }
    let mut builder = ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    let p = builder
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread pool: {e}")))?;
    let p = Arc::new(p);
    pools.insert(threads, p.clone());
    Ok(p)
}

thread_local! {
    /// This thread's one-thread pool, once `threads=1` was asked for on it.
    static OWN: OnceCell<Option<ThreadPool>> = const { OnceCell::new() };
}

fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> PyResult<T> {
    OWN.with(|own| {
        let pool = own.get_or_init(|| {
            ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
                .ok()
        });
        match pool {
            Some(p) => Ok(p.install(f)),
            None => Err(PyRuntimeError::new_err(
                "cannot make this thread a one-thread pool (it is already a rayon worker)",
            )),
        }
    })
}

/// Runs `f` on `threads` threads (`None`: every core); `threads=0` is refused like the CLI's
/// `--threads 0`.
pub fn run<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    match threads {
        Some(0) => Err(PyValueError::new_err(
            "threads: 0 is not allowed; use 1 or more",
        )),
        Some(1) => on_own_thread(f),
        None if OWN.with(|own| own.get().is_none()) => Ok(f()),
        n => Ok(shared(n)?.install(f)),
    }
}

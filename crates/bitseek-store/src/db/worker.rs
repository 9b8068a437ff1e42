//! A background thread a collection runs on demand (the flusher, the index builder): started
//! when work is due unless it runs already, ending itself when it finds none, joined on close.

use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

/// One on-demand thread and what it last failed with.
#[derive(Default)]
pub(super) struct Worker {
    state: Mutex<WorkerState>,
}

/// Read and changed under the worker's lock, so a `start` racing a thread that is ending starts
/// a new one.
#[derive(Default)]
pub(super) struct WorkerState {
    /// A thread runs (or is about to end, under this lock).
    pub(super) running: bool,
    /// The collection is closing: nothing new starts, the thread stops at its next job.
    pub(super) closed: bool,
    handle: Option<JoinHandle<()>>,
    /// Why the last failed job failed, for tests and `info`.
    last_error: Option<String>,
}

impl Worker {
    /// Starts `run` on a new thread unless one runs already or the worker is closed. Call
    /// without holding the writer.
    pub(super) fn start(&self, run: impl FnOnce() + Send + 'static) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.running || st.closed {
            return;
        }
        if let Some(h) = st.handle.take() {
            let _ = h.join();
        }
        st.running = true;
        st.handle = Some(std::thread::spawn(run));
    }

    /// The state, for the thread to decide under it whether to go on; `None` if poisoned.
    pub(super) fn lock(&self) -> Option<MutexGuard<'_, WorkerState>> {
        self.state.lock().ok()
    }

    /// Whether no thread runs (nothing due, or the last job failed).
    pub(super) fn idle(&self) -> bool {
        self.state.lock().map_or(true, |s| !s.running)
    }

    /// Records why a job failed.
    pub(super) fn failed(&self, error: String) {
        if let Ok(mut st) = self.state.lock() {
            st.last_error = Some(error);
        }
    }

    /// Why the last failed job failed.
    pub(super) fn last_error(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_error.clone())
    }

    /// Stops starting threads and waits for the one under way.
    pub(super) fn close(&self) {
        let handle = match self.state.lock() {
            Ok(mut st) => {
                st.closed = true;
                st.handle.take()
            }
            Err(_) => None,
        };
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

//! Background index builds: one thread per collection builds, one segment after another, the
//! sub-linear index its configuration names, outside the writer lock, then swaps it in under the
//! lock for the few milliseconds a manifest swap takes. Searches use the flat segment until then;
//! writes never wait for a build.

use super::lock;
use super::snapshot::Snapshot;
use super::worker::{Worker, WorkerState};
use super::writer::Writer;
use crate::error::StoreError;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// What the builder thread shares with its collection.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) writer: Arc<Mutex<Writer>>,
    pub(super) snapshot: Arc<RwLock<Arc<Snapshot>>>,
    pub(super) builds: Arc<Builds>,
    pub(super) flushes: Arc<super::flush::Flushes>,
}

/// The builder thread's state.
#[derive(Default)]
pub(super) struct Builds {
    pub(super) worker: Worker,
    /// Held by [`LiveCollection::pause_builds`](super::LiveCollection::pause_builds); the builder
    /// takes it before each build.
    pub(super) gate: Mutex<()>,
}

/// Makes `w`'s state the current snapshot.
pub(super) fn publish(snapshot: &RwLock<Arc<Snapshot>>, w: &Writer) {
    let s = Arc::new(w.snapshot());
    match snapshot.write() {
        Ok(mut g) => *g = s,
        Err(e) => *e.into_inner() = s,
    }
}

impl Shared {
    /// Starts the builder thread unless it runs already (it looks for due segments itself).
    /// Call without holding the writer.
    pub(super) fn schedule(&self) {
        let me = self.clone();
        self.builds.worker.start(move || me.run());
    }

    fn run(&self) {
        loop {
            let job = {
                let Some(st) = self.builds.worker.lock() else {
                    return;
                };
                let Ok(mut w) = lock(&self.writer) else {
                    drop(w_done(st));
                    return;
                };
                if st.closed {
                    w.building = None;
                    drop(w);
                    drop(w_done(st));
                    return;
                }
                match w.next_build(&self.dir) {
                    Some(job) => job,
                    None => {
                        drop(w);
                        drop(w_done(st));
                        return;
                    }
                }
            };
            // The writer's manifest at the start stands for the collection's shape (dimension,
            // metric, kept copy), which never changes.
            let m = match lock(&self.writer) {
                Ok(w) => w.manifest.clone(),
                Err(_) => return,
            };
            let _gate = lock(&self.builds.gate);
            let built = job
                .segment
                .build_index(&self.dir, job.kind, job.degree, &job.file, &m);
            let result = (|| -> Result<(), StoreError> {
                let mut w = lock(&self.writer)?;
                let built = match built {
                    Ok(b) => b,
                    Err(e) => {
                        w.building = None;
                        w.failed_builds.insert(job.segment.entry.file.clone());
                        let _ = std::fs::remove_file(self.dir.join(&job.file));
                        return Err(e);
                    }
                };
                if w.dropped {
                    w.building = None;
                    return Ok(());
                }
                if w.swap_index(&self.dir, &job, built)? {
                    publish(&self.snapshot, &w);
                }
                Ok(())
            })();
            if let Err(e) = result {
                self.builds.worker.failed(e.to_string());
            }
        }
    }
}

/// Marks the builder stopped (under its state lock, so a concurrent `schedule` starts a new one).
fn w_done(mut st: MutexGuard<'_, WorkerState>) -> MutexGuard<'_, WorkerState> {
    st.running = false;
    st
}

//! Background flushes: when the memtable fills, the writer freezes it (a new log takes the next
//! writes; see [`Writer::make_room`](super::writer::Writer)) and this thread writes the frozen
//! rows into a segment outside the writer lock, then swaps it in under the lock for the
//! milliseconds a tombstone file and a manifest take. Writes never wait for a flush unless the
//! new memtable fills too before it lands (back-pressure: that write waits for it). Flushes run
//! on their own thread, apart from index builds, so a long build never holds one up.

use super::builds::{publish, Shared};
use super::lock;
use super::segment::{write_segment, Segment};
use super::worker::Worker;
use super::writer::FlushJob;
use crate::error::StoreError;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The flusher thread's state.
#[derive(Default)]
pub(super) struct Flushes {
    pub(super) worker: Worker,
    /// Held by [`LiveCollection::pause_flushes`](super::LiveCollection::pause_flushes); the
    /// flusher takes it after writing a segment, and holds it while swapping it in.
    pub(super) gate: Mutex<()>,
    /// Notified (with the writer's mutex) when a flush lands or fails: back-pressured writes
    /// wait on it.
    pub(super) done: Condvar,
}

/// How long a back-pressured write waits before looking again (a wake-up it missed, a flusher
/// that died).
pub(super) const RECHECK: Duration = Duration::from_millis(50);

impl Shared {
    /// Starts the flusher thread unless it runs already (it looks for a frozen memtable
    /// itself). Call without holding the writer.
    pub(super) fn schedule_flush(&self) {
        let me = self.clone();
        self.flushes.worker.start(move || me.run_flushes());
    }

    fn run_flushes(&self) {
        loop {
            let job = {
                let Some(mut st) = self.flushes.worker.lock() else {
                    return;
                };
                let job = match lock(&self.writer) {
                    Ok(mut w) if !st.closed => w.next_flush(),
                    _ => None,
                };
                match job {
                    Some(job) => job,
                    None => {
                        st.running = false;
                        return;
                    }
                }
            };
            let written = write_frozen(&self.dir, &job);
            // Held through the swap, so a paused collection's files stay as they are.
            let _gate = lock(&self.flushes.gate);
            let result = (|| -> Result<(), StoreError> {
                let mut w = lock(&self.writer)?;
                let outcome = w.commit_flush(&self.dir, &job, written);
                match outcome {
                    Ok(true) => publish(&self.snapshot, &w),
                    Ok(false) => {}
                    Err(e) => {
                        w.flush_failed(&self.dir, &job, e.to_string());
                        self.flushes.done.notify_all();
                        return Err(e);
                    }
                }
                self.flushes.done.notify_all();
                Ok(())
            })();
            match result {
                // The new segment may be due for its index.
                Ok(()) => self.schedule(),
                Err(e) => self.flushes.worker.failed(e.to_string()),
            }
        }
    }
}

/// Writes the live rows of `job`'s frozen memtable, in id order, as `seg-<id>.bitseek` (synced,
/// reopened mapped); `None` when none is live.
fn write_frozen(dir: &std::path::Path, job: &FlushJob) -> Result<Option<Segment>, StoreError> {
    let m = &job.manifest;
    let dim = m.dim;
    let mut rows: Vec<(u64, usize, usize)> = Vec::new();
    for (ci, (chunk, live)) in job.mem.iter().enumerate() {
        for (r, &id) in chunk.ids.iter().enumerate() {
            if live.contains(r) {
                rows.push((id, ci, r));
            }
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    rows.sort_unstable_by_key(|x| x.0);
    let mut ids = Vec::with_capacity(rows.len());
    let mut vectors = Vec::with_capacity(rows.len() * dim);
    let mut payloads = Vec::with_capacity(rows.len());
    for (id, ci, r) in rows {
        let chunk = &job.mem[ci].0;
        ids.push(id);
        vectors.extend_from_slice(&chunk.vectors[r * dim..(r + 1) * dim]);
        payloads.push(chunk.payloads[r].clone());
    }
    write_segment(dir, job.id, m, &m.quantizer, ids, vectors, payloads).map(Some)
}

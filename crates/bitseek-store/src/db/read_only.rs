//! Why a collection refuses writes after a failed `fsync` or manifest swap, and how it takes
//! them again.
//!
//! A failed `fsync` of the log leaves the log's state on disk unknown: the kernel may drop the
//! dirty pages and report success to the next `fsync` ("fsyncgate"), so that `fsync` is never
//! retried. A failed manifest swap leaves unknown which manifest is on disk. Either way the
//! collection turns read-only with the reason ([`CollectionInfo::read_only`]) and keeps serving
//! reads from memory, which holds every acknowledged write. The next write (or compaction,
//! checkpoint, snapshot) first writes a new generation from memory: the memtable into a new
//! segment, new tombstones and a new empty log, each written and synced afresh, then the
//! manifest swapped. That generation depends on no file whose sync failed; once it is written
//! (the disk has space again, the device answers) writes resume. Until then each attempt is
//! refused with the reason.
//!
//! [`CollectionInfo::read_only`]: super::CollectionInfo::read_only

use super::collection::LiveCollection;
use super::lock;
use super::writer::Writer;
use crate::error::{ErrorKind, StoreError};
use std::sync::{Arc, Mutex};

/// The reason writes are refused (and whether the disk is full), shared by the writer, which
/// sets it, and [`LiveCollection::info`], which reports it without waiting for the writer.
#[derive(Clone, Default)]
pub(super) struct ReadOnly(Arc<Mutex<Option<(String, bool)>>>);

impl ReadOnly {
    /// Refuses writes from now on because of `err` (what failed, in words).
    pub(super) fn set(&self, reason: String, err: &StoreError) {
        let no_space = err.kind() == ErrorKind::NoSpace;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((reason, no_space));
    }

    /// Why writes are refused, and whether the disk is full; `None` when they are not.
    pub(super) fn get(&self) -> Option<(String, bool)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl LiveCollection {
    /// Whether `w` may write: not when the collection was dropped; when it is read-only, only
    /// once a new generation written from memory has replaced every file whose state is unknown.
    pub(super) fn writable(&self, w: &mut Writer) -> Result<(), StoreError> {
        if w.dropped {
            return Err(StoreError::UnknownCollection {
                name: self.name().into(),
            });
        }
        let Some((reason, _)) = w.read_only.get() else {
            return Ok(());
        };
        if let Err(e) = w.new_generation(self.dir()) {
            let no_space = e.kind() == ErrorKind::NoSpace;
            return Err(StoreError::ReadOnly {
                name: self.name().into(),
                reason: format!("{reason}; writing its state into new files failed too ({e})"),
                no_space,
            });
        }
        w.read_only.clear();
        // Nothing may sync the old log any more, and every write in memory is now in synced
        // files: waiters (under grouped commit) may return.
        *lock(&self.sync_target)? = None;
        let mut st = lock(&self.group.state)?;
        st.failed = None;
        st.synced = st.synced.max(w.next_lsn - 1);
        self.group.cv.notify_all();
        drop(st);
        self.publish(w);
        Ok(())
    }

    /// The error a refused write returns while the collection is read-only.
    pub(super) fn read_only_error(&self, w: &Writer) -> Option<StoreError> {
        w.read_only
            .get()
            .map(|(reason, no_space)| StoreError::ReadOnly {
                name: self.name().into(),
                reason,
                no_space,
            })
    }
}

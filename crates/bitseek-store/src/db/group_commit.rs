//! Making acknowledged writes durable: appending a record to the log, and under grouped commit
//! the shared `fsync` that every write arriving within the window waits for. A failed append is
//! cut from the log and refused; a failed `fsync` turns the collection read-only
//! (`read_only.rs`).

use super::collection::LiveCollection;
use super::config::Durability;
use super::lock;
use super::writer::Writer;
use crate::error::{io_err, ErrorKind, StoreError};
use crate::faults;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Grouped commit: waiters share one fsync.
#[derive(Default)]
pub(super) struct GroupSync {
    pub(super) state: Mutex<GroupState>,
    pub(super) cv: Condvar,
}

#[derive(Default)]
pub(super) struct GroupState {
    /// Every write up to this sequence number is durable.
    pub(super) synced: u64,
    /// Whether a waiter has taken on the next shared fsync.
    leader: bool,
    /// Why the last shared fsync failed, and whether the disk is full; every later wait fails
    /// with it until the read-only state is cleared.
    pub(super) failed: Option<(String, bool)>,
}

impl LiveCollection {
    /// Appends one encoded record to the log, and under `Fsync` syncs it.
    pub(super) fn append(&self, w: &mut Writer, bytes: &[u8], lsn: u64) -> Result<(), StoreError> {
        w.ensure_log(self.dir())?;
        let fsync = w.manifest.durability == Durability::Fsync;
        let log = w.log.as_mut().expect("ensure_log opened the log");
        if let Err(e) = faults::write_all(&mut log.file, &log.path, bytes) {
            // Leave no partial record behind; if even that fails, the log's end is unknown.
            let err = io_err(&log.path)(e);
            if let Err(cut) = log.file.set_len(log.len) {
                let reason = format!(
                    "a failed append to {} left a partial record that could not be cut ({cut})",
                    log.path.display()
                );
                w.read_only.set(reason, &err);
            }
            return Err(err);
        }
        if fsync {
            if let Err(e) = faults::sync(&log.file, &log.path, true) {
                // Never retried: the pages it failed to write may be dropped and the next fsync
                // report success. The write is refused (not applied); the record is cut from the
                // file, though whether the cut reaches the disk is unknown too.
                let _ = log.file.set_len(log.len);
                let err = io_err(&log.path)(e);
                let reason = format!(
                    "fsync of {} failed ({err}), so the write was refused",
                    log.path.display()
                );
                w.read_only.set(reason, &err);
                return Err(self.read_only_error(w).unwrap_or(err));
            }
        } else {
            let file = Arc::new(log.file.try_clone().map_err(io_err(&log.path))?);
            *lock(&self.sync_target)? = Some((file, lsn));
        }
        log.len += bytes.len() as u64;
        log.records += 1;
        w.next_lsn = lsn + 1;
        Ok(())
    }

    /// Under grouped commit, waits until a shared fsync covers `lsn`.
    pub(super) fn wait_durable(&self, lsn: u64) -> Result<(), StoreError> {
        let window = match self.snapshot_view().config.durability {
            Durability::Fsync => {
                lock(&self.group.state)?.synced = lsn;
                return Ok(());
            }
            Durability::Grouped { window_ms } => Duration::from_millis(window_ms),
        };
        let mut st = lock(&self.group.state)?;
        loop {
            if let Some((reason, no_space)) = &st.failed {
                return Err(StoreError::ReadOnly {
                    name: self.name().into(),
                    reason: reason.clone(),
                    no_space: *no_space,
                });
            }
            if st.synced >= lsn {
                return Ok(());
            }
            if !st.leader {
                st.leader = true;
                drop(st);
                std::thread::sleep(window);
                let target = lock(&self.sync_target)?.clone();
                let result = match &target {
                    Some((file, _)) => faults::sync(file, self.dir(), true),
                    None => Ok(()),
                };
                st = lock(&self.group.state)?;
                st.leader = false;
                match result {
                    Ok(()) => {
                        if let Some((_, upto)) = target {
                            st.synced = st.synced.max(upto);
                        }
                    }
                    Err(e) => {
                        // Never retried (see `read_only.rs`): every write waiting on it is refused,
                        // though it is in memory and may be made durable by the rewrite that
                        // clears the read-only state.
                        let err = io_err(self.dir())(e);
                        let reason = format!(
                            "grouped fsync of the log failed ({err}); the writes waiting for it \
                             were refused but may still be applied"
                        );
                        st.failed = Some((reason.clone(), err.kind() == ErrorKind::NoSpace));
                        self.group.cv.notify_all();
                        // The writer lock is never taken while holding this one's.
                        drop(st);
                        if let Ok(w) = self.writer() {
                            w.read_only.set(reason, &err);
                        }
                        st = lock(&self.group.state)?;
                    }
                }
                self.group.cv.notify_all();
            } else {
                st = self
                    .group
                    .cv
                    .wait(st)
                    .map_err(|_| StoreError::Internal("group commit lock poisoned".into()))?;
            }
        }
    }

    /// After a new generation: everything before it is in synced segment files.
    pub(super) fn release_waiters(&self) -> Result<(), StoreError> {
        let last = self.writer()?.next_lsn - 1;
        let mut st = lock(&self.group.state)?;
        st.synced = st.synced.max(last);
        self.group.cv.notify_all();
        Ok(())
    }
}

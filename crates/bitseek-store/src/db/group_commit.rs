//! Making acknowledged writes durable: appending a record to the log, and under grouped commit
//! the shared `fsync` that every write arriving within the window waits for.

use super::collection::LiveCollection;
use super::config::Durability;
use super::lock;
use super::writer::Writer;
use crate::error::{io_err, StoreError};
use std::io::Write;
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
    /// Why the last shared fsync failed; every later wait fails with it.
    failed: Option<String>,
}

impl LiveCollection {
    /// Appends one encoded record to the log, and under `Fsync` syncs it.
    pub(super) fn append(&self, w: &mut Writer, bytes: &[u8], lsn: u64) -> Result<(), StoreError> {
        w.ensure_log(self.dir())?;
        let fsync = w.manifest.durability == Durability::Fsync;
        let log = w.log.as_mut().expect("ensure_log opened the log");
        if let Err(e) = log.file.write_all(bytes) {
            // Leave no partial record behind.
            let _ = log.file.set_len(log.len);
            return Err(io_err(&log.path)(e));
        }
        if fsync {
            if let Err(e) = log.file.sync_data() {
                let msg = format!(
                    "fsync of {} failed ({e}); writes are refused until the collection is reopened",
                    log.path.display()
                );
                w.poisoned = Some(msg.clone());
                return Err(StoreError::Internal(msg));
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
            if let Some(f) = &st.failed {
                return Err(StoreError::Internal(f.clone()));
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
                    Some((file, _)) => file.sync_data(),
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
                        let msg = format!(
                            "grouped fsync of the log failed ({e}); writes are refused until the collection is reopened"
                        );
                        st.failed = Some(msg.clone());
                        if let Ok(mut w) = self.writer() {
                            w.poisoned = Some(msg);
                        }
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

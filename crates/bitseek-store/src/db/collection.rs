//! The live collection's public API: opening, upserts, deletes, point lookups, searches,
//! compaction, quantizer changes and snapshots.

use super::builds::{publish, Shared};
use super::config::{
    parse_quantizer, CollectionInfo, CompactReport, DbOptions, LostWrites, Point, Record,
    ScoredPoint, SearchRequest, LIVE_VERSION,
};
use super::flush::RECHECK;
use super::group_commit::GroupSync;
use super::lock;
use super::manifest::{LiveManifest, LogEntry};
use super::read_only::ReadOnly;
use super::snapshot::Snapshot;
use super::writer::{Recovery, Room, Writer};
use crate::error::{io_err, StoreError};
use crate::faults;
use crate::files::{sync_dir, write_synced};
use crate::manifest::MANIFEST;
use crate::wal::{self, Op};
use bitseek_index::vector::{check_row, normalize};
use bitseek_index::{IndexError, Keep, Metric};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// A live collection. Thread-safe: `Send + Sync`, every method takes `&self`; writes are
/// serialised by an internal mutex, searches run on a [`Snapshot`] and never wait for them.
pub struct LiveCollection {
    name: String,
    dir: PathBuf,
    /// The writer, the current snapshot and the background index builder, shared with the
    /// builder thread.
    shared: Shared,
    /// Calls waiting for `writer` (see [`LiveCollection::pause_writes`]).
    writers_waiting: AtomicUsize,
    pub(super) group: GroupSync,
    /// The log file of the newest write and its sequence number, for the grouped fsync.
    pub(super) sync_target: Mutex<Option<(Arc<File>, u64)>>,
    recovery: Recovery,
    /// The writer's read-only state, readable without waiting for the writer.
    read_only: ReadOnly,
    /// Whether full memtables are flushed in the background ([`DbOptions::background_flush`]).
    background_flush: bool,
}

impl std::fmt::Debug for LiveCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCollection")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LiveCollection {
    /// Opens the collection in `dir` on its own (a snapshot, say), outside any [`Db`]; its name
    /// is the directory's name.
    pub fn open(dir: &Path) -> Result<LiveCollection, StoreError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        LiveCollection::open_named(dir, &name, DbOptions::default())
    }

    pub(super) fn open_named(
        dir: &Path,
        name: &str,
        options: DbOptions,
    ) -> Result<LiveCollection, StoreError> {
        let manifest = LiveManifest::read(dir)?;
        let (w, recovery) = Writer::open(dir, manifest, options.flush_rows)?;
        let read_only = w.read_only.clone();
        let c = LiveCollection {
            name: name.to_owned(),
            dir: dir.to_owned(),
            shared: Shared {
                dir: dir.to_owned(),
                snapshot: Arc::new(RwLock::new(Arc::new(w.snapshot()))),
                writer: Arc::new(Mutex::new(w)),
                builds: Arc::default(),
                flushes: Arc::default(),
            },
            writers_waiting: AtomicUsize::new(0),
            group: GroupSync::default(),
            sync_target: Mutex::new(None),
            recovery,
            read_only,
            background_flush: options.background_flush,
        };
        {
            let w = c.writer()?;
            lock(&c.group.state)?.synced = w.next_lsn - 1;
        }
        // A frozen memtable whose flush a crash cut short; segments due for their index (a
        // build cut short, a configuration that asks for one).
        c.shared.schedule_flush();
        c.shared.schedule();
        Ok(c)
    }

    /// The writer's state, once every write ahead of this one is done.
    pub(super) fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        self.writers_waiting.fetch_add(1, Ordering::SeqCst);
        let w = lock(&self.shared.writer);
        self.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        w
    }

    /// Makes every later write through a handle still held fail with `UnknownCollection`.
    pub(super) fn mark_dropped(&self) -> Result<(), StoreError> {
        self.writer()?.dropped = true;
        Ok(())
    }

    /// Holds the writer until the returned guard is dropped: writes, flushes and compactions
    /// wait; searches go on, on the current snapshot. For tests that need a write held up at a
    /// known point, and for copying the directory by other means.
    pub fn pause_writes(&self) -> Result<WritePause<'_>, StoreError> {
        Ok(WritePause {
            _writer: self.writer()?,
        })
    }

    /// How many calls are waiting for the writer right now (see
    /// [`pause_writes`](Self::pause_writes)).
    pub fn writes_waiting(&self) -> usize {
        self.writers_waiting.load(Ordering::SeqCst)
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot_view(&self) -> Arc<Snapshot> {
        match self.shared.snapshot.read() {
            Ok(s) => s.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    pub(super) fn publish(&self, w: &Writer) {
        publish(&self.shared.snapshot, w);
    }

    /// Holds background index builds back until the returned guard is dropped: new segments stay
    /// flat meanwhile, as they do during a slow build. For tests that need a build held up.
    pub fn pause_builds(&self) -> Result<BuildPause<'_>, StoreError> {
        Ok(BuildPause {
            _gate: lock(&self.shared.builds.gate)?,
        })
    }

    /// Holds background flushes back until the returned guard is dropped: a frozen memtable's
    /// segment is written but not swapped in, so the frozen rows stay in memory (searched) and
    /// in their log. Writes go on into the new memtable until it fills too; the write that
    /// then needs room waits for the flush (back-pressure), so a test holding this must not
    /// fill the memtable twice on the same thread. For tests that need a flush held up.
    pub fn pause_flushes(&self) -> Result<FlushPause<'_>, StoreError> {
        Ok(FlushPause {
            _gate: lock(&self.shared.flushes.gate)?,
        })
    }

    /// Waits until no frozen memtable waits for its flush (flushed, or its flush failed);
    /// returns why the last failed flush failed, if one did. Searches and writes never need
    /// this.
    pub fn wait_for_flushes(&self) -> Option<String> {
        while !self.shared.flushes.worker.idle() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.shared.flushes.worker.last_error()
    }

    /// Waits until no segment is due for its index (every build done or failed); returns why
    /// the last failed build failed, if one did. Searches and writes never need this: a segment
    /// is searched flat until its index is swapped in.
    pub fn wait_for_builds(&self) -> Option<String> {
        while !self.shared.builds.worker.idle() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        self.shared.builds.worker.last_error()
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening had to repair, in words (empty when nothing).
    pub fn recovery(&self) -> &[String] {
        &self.recovery.lines
    }

    /// The writes opening found lost to damage in the middle of the log (empty when none).
    pub fn lost_writes(&self) -> &[LostWrites] {
        &self.recovery.lost
    }

    /// Counts and sizes.
    pub fn info(&self) -> CollectionInfo {
        let s = self.snapshot_view();
        CollectionInfo {
            name: self.name.clone(),
            config: s.config.clone(),
            points: s.points,
            segments: s.segments.len(),
            wal_records: s.wal_records,
            memtable_rows: s.mem_rows,
            flushing_rows: s.frozen_rows,
            generation: s.generation,
            size_bytes: dir_size(&self.dir),
            last_lsn: s.last_lsn,
            recovery: self.recovery.lines.clone(),
            lost_writes: self.recovery.lost.clone(),
            read_only: self.read_only.get().map(|(reason, _)| reason),
            segment_indexes: if s.config.index.is_flat() {
                Vec::new()
            } else {
                s.segments
                    .iter()
                    .map(|(g, _)| g.kind().name().to_owned())
                    .collect()
            },
        }
    }

    /// Inserts or replaces `points` (a later point with the same id in one batch wins). Durable
    /// on return, per the collection's [`Durability`]; returns the write's sequence number.
    pub fn upsert(&self, points: Vec<Point>) -> Result<u64, StoreError> {
        let s = self.snapshot_view();
        let dim = s.config.dim;
        let metric = s.config.metric;
        let mut ids = Vec::with_capacity(points.len());
        let mut vectors = Vec::with_capacity(points.len() * dim);
        let mut payloads = Vec::with_capacity(points.len());
        for (i, p) in points.into_iter().enumerate() {
            check_row(&p.vector, dim, metric).map_err(|problem| {
                StoreError::Input(format!("point {i} (id {}) {problem}", p.id))
            })?;
            ids.push(p.id);
            vectors.extend_from_slice(&p.vector);
            payloads.push(p.payload);
        }
        let mut w = self.writer()?;
        self.writable(&mut w)?;
        if ids.is_empty() {
            return Ok(w.next_lsn - 1);
        }
        let (mut w, room) = self.make_room(w)?;
        let lsn = w.next_lsn;
        let op = Op::Upsert {
            ids,
            vectors,
            payloads,
        };
        let bytes = wal::encode(&wal::LogRecord { lsn, op }, dim);
        self.append(&mut w, &bytes, lsn)?;
        let wal::LogRecord { op, .. } = wal::parse_record(&bytes, dim)
            .map(|(r, _)| r)
            .map_err(|e| StoreError::Internal(format!("a record just encoded reads back: {e}")))?;
        let Op::Upsert {
            ids,
            mut vectors,
            payloads,
        } = op
        else {
            return Err(StoreError::Internal(
                "an upsert record read back as a delete".into(),
            ));
        };
        if metric == Metric::Cosine {
            vectors.chunks_exact_mut(dim).for_each(normalize);
        }
        w.apply_upsert(ids, vectors, payloads);
        self.publish(&w);
        drop(w);
        self.after_room(room);
        self.wait_durable(lsn)?;
        Ok(lsn)
    }

    /// Deletes `ids`; returns how many of them existed. Durable on return.
    pub fn delete(&self, ids: &[u64]) -> Result<usize, StoreError> {
        let mut w = self.writer()?;
        self.writable(&mut w)?;
        let mut present: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| w.where_is.contains_key(id))
            .collect();
        present.sort_unstable();
        present.dedup();
        if present.is_empty() {
            return Ok(0);
        }
        let (mut w, room) = self.make_room(w)?;
        let lsn = w.next_lsn;
        let dim = w.manifest.dim;
        let bytes = wal::encode(
            &wal::LogRecord {
                lsn,
                op: Op::Delete {
                    ids: present.clone(),
                },
            },
            dim,
        );
        self.append(&mut w, &bytes, lsn)?;
        let n = w.apply_delete(&present);
        self.publish(&w);
        drop(w);
        self.after_room(room);
        self.wait_durable(lsn)?;
        Ok(n)
    }

    /// Makes room in the memtable for the write holding `w`: freezes a full one for the
    /// flusher, or, when the frozen one is still being flushed, waits for that flush with the
    /// writer released (back-pressure).
    fn make_room<'a>(
        &'a self,
        mut w: MutexGuard<'a, Writer>,
    ) -> Result<(MutexGuard<'a, Writer>, Room), StoreError> {
        loop {
            match w.make_room(&self.dir, self.background_flush)? {
                Room::Wait => {
                    // The flusher was scheduled when the memtable froze (never schedule it
                    // here: it takes its state's lock, then the writer's).
                    w = self
                        .shared
                        .flushes
                        .done
                        .wait_timeout(w, RECHECK)
                        .map_err(|_| {
                            StoreError::Internal(
                                "a writer panicked; restart to recover from the log".into(),
                            )
                        })?
                        .0;
                    self.writable(&mut w)?;
                }
                room => {
                    if room == Room::Froze {
                        // Everything before the new log is synced with the frozen one.
                        let mut st = lock(&self.group.state)?;
                        st.synced = st.synced.max(w.next_lsn - 1);
                        self.group.cv.notify_all();
                    }
                    return Ok((w, room));
                }
            }
        }
    }

    /// Starts what a write's [`Room`] calls for, once the writer is released.
    fn after_room(&self, room: Room) {
        match room {
            Room::Froze => self.shared.schedule_flush(),
            Room::Flushed => self.shared.schedule(),
            Room::Ready | Room::Wait => {}
        }
    }

    /// Makes every acknowledged write durable (for grouped commit: syncs the log now). For a
    /// graceful shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        if w.read_only.get().is_some() {
            // The log's last fsync failed: syncing it again proves nothing; rewrite instead.
            self.writable(&mut w)?;
        }
        if let Some(log) = w.log.as_mut() {
            if let Err(e) = faults::sync(&log.file, &log.path, false) {
                let err = io_err(&log.path)(e);
                let reason = format!("fsync of {} failed ({err})", log.path.display());
                w.read_only.set(reason, &err);
                return Err(err);
            }
        }
        let last = w.next_lsn - 1;
        drop(w);
        let mut st = lock(&self.group.state)?;
        st.synced = st.synced.max(last);
        self.group.cv.notify_all();
        Ok(())
    }

    /// Moves the memtable into a new segment now (normally done once it holds
    /// [`DbOptions::flush_rows`] rows).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        self.writable(&mut w)?;
        w.flush_memtable(&self.dir)?;
        self.publish(&w);
        drop(w);
        self.shared.schedule();
        self.release_waiters()
    }

    /// The point with `id`, if it is live.
    pub fn get(&self, id: u64) -> Option<Record> {
        let s = self.snapshot_view();
        let keep_f32 = s.config.keep == Keep::F32;
        for (chunk, live) in s.mem.iter().rev() {
            if let Some(&row) = chunk.rows_by_id.get(&id) {
                if live.contains(row) {
                    let dim = s.config.dim;
                    return Some(Record {
                        id,
                        vector: keep_f32
                            .then(|| chunk.vectors[row * dim..(row + 1) * dim].to_vec()),
                        payload: chunk.payloads[row].clone(),
                    });
                }
            }
        }
        for (seg, live) in s.segments.iter().rev() {
            if let Some(row) = seg.row_of(id) {
                if live.contains(row) {
                    return Some(Record {
                        id,
                        vector: seg.vector(row).map(<[f32]>::to_vec),
                        payload: seg.payloads[row].clone(),
                    });
                }
            }
        }
        None
    }

    /// The best `req.k` live points for `query`, best first.
    pub fn search(
        &self,
        query: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>, StoreError> {
        let dim = self.snapshot_view().config.dim;
        if query.len() != dim {
            return Err(IndexError::DimensionMismatch {
                expected: dim,
                found: query.len(),
            }
            .into());
        }
        Ok(self.search_batch(query, req)?.pop().unwrap_or_default())
    }

    /// [`search`](Self::search) for each row of row-major `queries` (n × dim), on one snapshot.
    pub fn search_batch(
        &self,
        queries: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Vec<ScoredPoint>>, StoreError> {
        self.snapshot_view().search(queries, req)
    }

    /// [`search_batch`](Self::search_batch) for queries of dimension `dim` as the caller holds
    /// them (a 2-D array's columns), refused with `DimensionMismatch` unless `dim` is the
    /// collection's: a flat slice alone cannot tell a wrong dimension from a different count.
    pub fn search_rows(
        &self,
        queries: &[f32],
        dim: usize,
        req: &SearchRequest,
    ) -> Result<Vec<Vec<ScoredPoint>>, StoreError> {
        let s = self.snapshot_view();
        if dim != s.config.dim {
            return Err(IndexError::DimensionMismatch {
                expected: s.config.dim,
                found: dim,
            }
            .into());
        }
        s.search(queries, req)
    }

    /// Merges the segments and the memtable into one segment without the dead rows, and starts
    /// a new log. Merging re-encodes from the `f32` copy: with [`Keep::Int8`] or [`Keep::None`]
    /// the memtable becomes a segment and every segment with dead rows is rewritten without them
    /// (codes copied as they are, each segment keeping its own fitted quantizer), unmerged.
    pub fn compact(&self) -> Result<CompactReport, StoreError> {
        let mut w = self.writer()?;
        self.writable(&mut w)?;
        let before = (w.segments.len(), w.stored_rows(), dir_size(&self.dir));
        let quantizer = w.manifest.quantizer.clone();
        w.rebuild(&self.dir, &quantizer)?;
        self.publish(&w);
        let report = CompactReport {
            generation: w.manifest.generation,
            segments_before: before.0,
            segments_after: w.segments.len(),
            rows_before: before.1,
            rows_after: w.stored_rows(),
            bytes_before: before.2,
            bytes_after: dir_size(&self.dir),
        };
        drop(w);
        self.shared.schedule();
        self.release_waiters()?;
        Ok(report)
    }

    /// Re-encodes every point with `quantizer`, from the kept `f32` copy. Refused when the
    /// collection keeps no `f32` copy: codes cannot be turned back into vectors.
    pub fn set_quantizer(&self, quantizer: &str) -> Result<(), StoreError> {
        parse_quantizer(quantizer)?;
        let mut w = self.writer()?;
        self.writable(&mut w)?;
        if w.manifest.keep != Keep::F32 {
            return Err(StoreError::Refused(format!(
                "collection {:?} keeps {} instead of the f32 vectors, so its points cannot be \
                 re-encoded with {quantizer:?}; create a new collection with keep \"f32\" (or the \
                 quantizer you want) and upsert the vectors again",
                self.name, w.manifest.keep
            )));
        }
        w.rebuild(&self.dir, quantizer)?;
        self.publish(&w);
        drop(w);
        self.shared.schedule();
        self.release_waiters()
    }

    /// Writes a consistent copy of the collection to `dest` (a new or empty directory), openable
    /// with [`LiveCollection::open`] or by placing it in a [`Db`]'s directory. Writes wait while the
    /// files are copied; searches do not.
    pub fn snapshot(&self, dest: &Path) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        self.writable(&mut w)?;
        if dest.exists() && fs::read_dir(dest).map_err(io_err(dest))?.next().is_some() {
            return Err(StoreError::Input(format!(
                "{} is not empty; give a new or empty directory for the snapshot",
                dest.display()
            )));
        }
        fs::create_dir_all(dest).map_err(io_err(dest))?;
        if let Some(log) = w.log.as_mut() {
            log.file.sync_all().map_err(io_err(&log.path))?;
        }
        let m = &w.manifest;
        for f in m.files() {
            if f == MANIFEST {
                continue;
            }
            let from = self.dir.join(&f);
            let to = dest.join(&f);
            if Some(&f) == m.log.as_ref().map(|l| &l.file) {
                let len = w.log.as_ref().map_or(0, |l| l.len) as usize;
                let bytes = fs::read(&from).map_err(io_err(&from))?;
                write_synced(&to, &bytes[..len.min(bytes.len())])?;
            } else if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).map_err(io_err(&to))?;
                File::open(&to)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err(&to))?;
            }
        }
        let mut m = m.clone();
        if m.log.is_none() {
            // A version-1 collection: give the copy its (empty) log.
            let file = format!("wal-{}.log", m.generation);
            write_synced(&dest.join(&file), wal::MAGIC)?;
            m.log = Some(LogEntry {
                file,
                flushed_lsn: 0,
            });
            m.version = LIVE_VERSION;
        }
        m.write(dest)?;
        if let Some(parent) = dest.parent() {
            let _ = sync_dir(parent);
        }
        Ok(())
    }
}

impl Drop for LiveCollection {
    /// Waits for a flush and an index build under way (their files would otherwise race a
    /// reopened writer).
    fn drop(&mut self) {
        self.shared.flushes.worker.close();
        self.shared.builds.worker.close();
    }
}

/// Flushes held up: see [`LiveCollection::pause_flushes`].
pub struct FlushPause<'a> {
    _gate: MutexGuard<'a, ()>,
}

impl std::fmt::Debug for FlushPause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushPause").finish_non_exhaustive()
    }
}

/// Index builds held up: see [`LiveCollection::pause_builds`].
pub struct BuildPause<'a> {
    _gate: MutexGuard<'a, ()>,
}

impl std::fmt::Debug for BuildPause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildPause").finish_non_exhaustive()
    }
}

/// Writes held up: see [`LiveCollection::pause_writes`].
pub struct WritePause<'a> {
    _writer: MutexGuard<'a, Writer>,
}

impl std::fmt::Debug for WritePause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritePause").finish_non_exhaustive()
    }
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

//! The writer: the state one writer at a time changes behind the collection's mutex (the
//! memtable, the frozen memtable being flushed, where each id's live copy is, the live masks,
//! the open log), and every change of generation (freeze, flush, compaction, quantizer change).

use super::config::{Durability, IndexKind, LostWrites, LIVE_VERSION};
use super::manifest::{is_build_file, next_generation, remove_stale, LiveManifest, LogEntry};
use super::read_only::ReadOnly;
use super::segment::{save_segment, write_segment, Segment};
use super::snapshot::Snapshot;
use super::tombstones::{live_rows, read_tombstones, write_tombstones};
use super::Live;
use crate::error::{io_err, Fix, StoreError};
use crate::faults;
use crate::files::{sync_dir, write_synced};
use crate::row_mask::RowMask;
use crate::wal::{self, Op};
use bitseek_index::vector::normalize;
use bitseek_index::{Keep, Metric};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One acknowledged upsert batch in memory.
pub(super) struct MemChunk {
    pub(super) ids: Vec<u64>,
    /// Row-major, normalised under cosine.
    pub(super) vectors: Vec<f32>,
    pub(super) payloads: Vec<Value>,
    pub(super) rows_by_id: HashMap<u64, usize>,
}

/// Where an id's live copy is: segment, memtable batch or frozen memtable batch, and row.
#[derive(Clone, Copy, Debug)]
pub(super) enum Loc {
    Seg(usize, usize),
    Mem(usize, usize),
    Frozen(usize, usize),
}

/// A full memtable, read-only, still searched and still covered by its own log (the manifest's
/// `frozen_log`) while the flusher writes it into a segment outside the writer lock.
pub(super) struct Frozen {
    /// Names its segment (`seg-<id>.bitseek`): a generation no other file takes.
    pub(super) id: u64,
    pub(super) mem: Vec<(Arc<MemChunk>, Live)>,
    /// The live masks as of the freeze, of the frozen batches and of every segment: what the
    /// flushed generation holds on disk, the active log (from the freeze on) bringing it up
    /// to date on replay. A write after the freeze is in the active log only, so damage to
    /// that log can lose it, never an older copy it replaced or deleted.
    pub(super) at_freeze: (Vec<Live>, Vec<Live>),
    pub(super) rows: usize,
    /// The flusher is writing its segment now.
    pub(super) flushing: bool,
    /// Why its last flush failed; the next write that needs room flushes it itself.
    pub(super) failed: Option<String>,
}

/// A frozen memtable's rows as the flusher took them, to write outside the writer lock.
pub(super) struct FlushJob {
    pub(super) id: u64,
    pub(super) mem: Vec<(Arc<MemChunk>, Live)>,
    pub(super) manifest: LiveManifest,
}

/// What a write found when it made room in the memtable.
#[derive(Debug, PartialEq)]
pub(super) enum Room {
    /// The memtable has room.
    Ready,
    /// The memtable was frozen: the flusher is due.
    Froze,
    /// Flushed here, under the lock (inline flushes, or a failed background flush redone).
    Flushed,
    /// Both memtables are full: wait for the flush under way (back-pressure).
    Wait,
}

/// The open log file.
pub(super) struct LogFile {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) len: u64,
    pub(super) records: usize,
}

/// What opening had to repair: in words, and the lost writes by sequence number.
#[derive(Default)]
pub(super) struct Recovery {
    pub(super) lines: Vec<String>,
    pub(super) lost: Vec<LostWrites>,
}

/// The writer's state, behind the collection's mutex.
pub(super) struct Writer {
    pub(super) manifest: LiveManifest,
    pub(super) log: Option<LogFile>,
    pub(super) next_lsn: u64,
    pub(super) where_is: HashMap<u64, Loc>,
    pub(super) segments: Vec<(Arc<Segment>, Live)>,
    pub(super) mem: Vec<(Arc<MemChunk>, Live)>,
    pub(super) mem_rows: usize,
    /// The memtable being flushed in the background, if any.
    pub(super) frozen: Option<Frozen>,
    /// The highest generation handed out but maybe not yet on disk (the frozen memtable's).
    pub(super) reserved: u64,
    pub(super) points: usize,
    pub(super) flush_rows: usize,
    pub(super) dropped: bool,
    /// Set when an fsync or a manifest swap failed: what is on disk is unknown, so no more
    /// writes until a new generation is written (see `read_only.rs`).
    pub(super) read_only: ReadOnly,
    /// The index file the background builder is writing now, which stale-file removal spares.
    pub(super) building: Option<String>,
    /// Segment files whose index build failed (not retried until the collection is reopened).
    pub(super) failed_builds: HashSet<String>,
}

/// A segment whose index is due: the segment, the kind, and the file to build it into.
pub(super) struct BuildJob {
    pub(super) segment: Arc<Segment>,
    pub(super) kind: IndexKind,
    /// A graph's neighbours per node (`None`: the default).
    pub(super) degree: Option<usize>,
    pub(super) file: String,
}

impl Writer {
    /// The writer of the collection `manifest` describes in `dir`: its segments opened with their
    /// dead rows marked, then its log replayed on top. Also returns what replaying had to repair,
    /// in words.
    pub(super) fn open(
        dir: &Path,
        manifest: LiveManifest,
        flush_rows: usize,
    ) -> Result<(Writer, Recovery), StoreError> {
        let mut w = Writer {
            manifest,
            log: None,
            next_lsn: 1,
            where_is: HashMap::new(),
            segments: Vec::new(),
            mem: Vec::new(),
            mem_rows: 0,
            frozen: None,
            reserved: 0,
            points: 0,
            flush_rows,
            dropped: false,
            read_only: ReadOnly::default(),
            building: None,
            failed_builds: HashSet::new(),
        };
        // A build cut short by a crash left its file (or its temporary file) unnamed by the
        // manifest: the segment is still the flat one the manifest names; the build reruns.
        let named = w.manifest.files();
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_build_file(&name) && !named.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        w.load_segments(dir)?;
        let recovery = w.replay_log(dir)?;
        Ok((w, recovery))
    }

    /// Opens the manifest's segments and their tombstones, and indexes every live id.
    fn load_segments(&mut self, dir: &Path) -> Result<(), StoreError> {
        let mut segments = Vec::with_capacity(self.manifest.segments.len());
        for entry in &self.manifest.segments {
            segments.push(Arc::new(Segment::open(dir, entry, &self.manifest)?));
        }
        let dead = match &self.manifest.tombstones {
            None => vec![Vec::new(); segments.len()],
            Some(t) => read_tombstones(dir, t, &segments)?,
        };
        for (i, (seg, dead)) in segments.into_iter().zip(dead).enumerate() {
            let mut live = Arc::new(live_rows(seg.rows(), &dead));
            for (row, &id) in seg.index.ids().iter().enumerate() {
                if !live.contains(row) {
                    continue;
                }
                if let Some(old) = self.where_is.insert(id, Loc::Seg(i, row)) {
                    // Two live copies: the newer segment's wins (a flush records this itself,
                    // so this only happens in a collection written by hand).
                    self.kill(old, Some((&mut live, i)));
                } else {
                    self.points += 1;
                }
            }
            self.segments.push((seg, live));
        }
        Ok(())
    }

    /// Applies the log's records past the manifest's flushed sequence number, repairs the log
    /// (a torn tail cut, damaged bytes in the middle removed), says what it repaired and lost,
    /// and opens the log for appending.
    ///
    /// Records after a damaged region are applied in order, over a state that misses the lost
    /// writes. The result may be a state that never existed: an id deleted in a lost write and
    /// not written since is still there, one upserted only there is absent, one updated there
    /// keeps its older value. Every id the intact records write ends as the history says. The
    /// alternative, cutting at the damage, also loses every later acknowledged write, so it
    /// loses strictly more; the lost sequence numbers are reported either way. Under `Fsync` a
    /// record is synced before the next is written, so one with intact records after it was
    /// acknowledged; under grouped commit a power loss can also hole the last unsynced window,
    /// whose writes were never acknowledged but are reported as lost all the same.
    fn replay_log(&mut self, dir: &Path) -> Result<Recovery, StoreError> {
        let mut recovery = Recovery::default();
        let Some(log) = self.manifest.log.clone() else {
            return Ok(recovery);
        };
        if let Some(frozen) = self.manifest.frozen_log.clone() {
            // A flush was under way: its memtable is frozen again and flushed again.
            self.next_lsn = frozen.flushed_lsn + 1;
            self.replay_one(dir, &frozen, &mut recovery)?;
            if self.next_lsn <= log.flushed_lsn {
                let lost = LostWrites {
                    first_lsn: self.next_lsn,
                    last_lsn: log.flushed_lsn,
                };
                recovery.lines.push(format!(
                    "{}: ends before sequence number {}; acknowledged writes with sequence \
                     numbers {}..={} are lost",
                    dir.join(&frozen.file).display(),
                    log.flushed_lsn,
                    lost.first_lsn,
                    lost.last_lsn
                ));
                recovery.lost.push(lost);
            }
            let id = self.next_gen(dir);
            self.freeze_in_memory(id);
        }
        self.next_lsn = log.flushed_lsn + 1;
        let file = self.replay_one(dir, &log, &mut recovery)?;
        self.log = Some(file);
        Ok(recovery)
    }

    /// Applies one log's records past its flushed sequence number (from `self.next_lsn`),
    /// repairs it, adds what it repaired and lost to `recovery`, and opens it for appending.
    fn replay_one(
        &mut self,
        dir: &Path,
        log: &LogEntry,
        recovery: &mut Recovery,
    ) -> Result<LogFile, StoreError> {
        let path = dir.join(&log.file);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Log {
                    path,
                    reason: format!(
                    "the log of generation {} is missing; restore the collection from a snapshot",
                    self.manifest.generation
                ),
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let dim = self.manifest.dim;
        let scan = wal::scan(&bytes, dim).map_err(|reason| StoreError::Log {
            path: path.clone(),
            reason: format!("{reason}; restore the collection from a snapshot"),
        })?;
        let mut records = 0;
        for rec in scan.records {
            // Sequence numbers go up by one per write, so a jump is lost writes: in a region
            // skipped now, or in one an earlier open removed.
            let missing = (rec.lsn > self.next_lsn).then(|| LostWrites {
                first_lsn: self.next_lsn,
                last_lsn: rec.lsn - 1,
            });
            let lost = match missing {
                Some(m) => format!(
                    "acknowledged writes with sequence numbers {}..={} are lost",
                    m.first_lsn, m.last_lsn
                ),
                None => "no write is lost (the records on either side are consecutive)".into(),
            };
            if let Some(gap) = scan.skipped.iter().find(|g| g.lsn_after == rec.lsn) {
                recovery.lines.push(format!(
                    "{}: skipped {} damaged bytes at offsets {}..{} ({}); {lost}; the records \
                     after them, from sequence number {}, were replayed",
                    path.display(),
                    gap.bytes.len(),
                    gap.bytes.start,
                    gap.bytes.end,
                    gap.why,
                    rec.lsn
                ));
            } else if missing.is_some() {
                recovery.lines.push(format!(
                    "{}: {lost}: they are missing from the log, removed as damage when the \
                     collection was opened before",
                    path.display()
                ));
            }
            if rec.lsn <= log.flushed_lsn {
                continue;
            }
            recovery.lost.extend(missing);
            self.next_lsn = rec.lsn + 1;
            records += 1;
            match rec.op {
                Op::Upsert {
                    ids,
                    mut vectors,
                    payloads,
                } => {
                    if self.manifest.metric == Metric::Cosine {
                        vectors.chunks_exact_mut(dim).for_each(normalize);
                    }
                    self.apply_upsert(ids, vectors, payloads);
                }
                Op::Delete { ids } => {
                    self.apply_delete(&ids);
                }
            }
        }
        if let Some(why) = &scan.stopped {
            recovery.lines.push(format!(
                "{}: cut {} bytes at offset {} after {records} good records (last sequence \
                 number {}): {why}; a record torn by a crash was never acknowledged, but a whole \
                 record damaged on disk there is lost",
                path.display(),
                bytes.len() - scan.good_len,
                scan.good_len,
                self.next_lsn - 1
            ));
        }
        if !scan.skipped.is_empty() {
            // Rewritten whole through a synced temporary file and a rename: a crash before the
            // rename leaves the damaged log, which the next open repairs the same way; after
            // it, the clean log, whose jump in sequence numbers still reports the loss.
            let mut clean = Vec::with_capacity(scan.good_len);
            let mut from = 0;
            for gap in &scan.skipped {
                clean.extend_from_slice(&bytes[from..gap.bytes.start]);
                from = gap.bytes.end;
            }
            clean.extend_from_slice(&bytes[from..scan.good_len]);
            write_synced(&path, &clean)?;
            sync_dir(dir)?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if scan.skipped.is_empty() && scan.stopped.is_some() {
            file.set_len(scan.good_len as u64).map_err(io_err(&path))?;
            if scan.good_len < wal::MAGIC.len() {
                faults::write_all(&mut file, &path, wal::MAGIC).map_err(io_err(&path))?;
            }
            faults::sync(&file, &path, false).map_err(io_err(&path))?;
        }
        let len = file.metadata().map_err(io_err(&path))?.len();
        Ok(LogFile {
            file,
            path,
            len,
            records,
        })
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            config: self.manifest.config(),
            generation: self.manifest.generation,
            segments: self.segments.clone(),
            mem: self.frozen_chunks().chain(&self.mem).cloned().collect(),
            frozen_rows: self.frozen.as_ref().map_or(0, |f| f.rows),
            mem_rows: self.mem_rows,
            points: self.points,
            wal_records: self.log.as_ref().map_or(0, |l| l.records),
            last_lsn: self.next_lsn - 1,
        }
    }

    pub(super) fn stored_rows(&self) -> usize {
        self.segments.iter().map(|(s, _)| s.rows()).sum::<usize>()
            + self.mem_rows
            + self.frozen.as_ref().map_or(0, |f| f.rows)
    }

    /// The frozen memtable's batches (none when no flush is under way).
    fn frozen_chunks(&self) -> std::slice::Iter<'_, (Arc<MemChunk>, Live)> {
        self.frozen.as_ref().map_or([].iter(), |f| f.mem.iter())
    }

    /// One past the newest generation named by the manifest, by a file in `dir`, or reserved
    /// for the frozen memtable's segment.
    pub(super) fn next_gen(&self, dir: &Path) -> u64 {
        next_generation(dir, &self.manifest).max(self.reserved + 1)
    }

    /// Marks the copy at `loc` dead. `current` is a live mask being built for segment index
    /// `.1`, not yet in `self.segments`.
    pub(super) fn kill(&mut self, loc: Loc, current: Option<(&mut Live, usize)>) {
        match loc {
            Loc::Seg(i, r) => match current {
                Some((live, ci)) if ci == i => Arc::make_mut(live).remove(r),
                _ => Arc::make_mut(&mut self.segments[i].1).remove(r),
            },
            Loc::Mem(i, r) => Arc::make_mut(&mut self.mem[i].1).remove(r),
            Loc::Frozen(i, r) => {
                if let Some(f) = self.frozen.as_mut() {
                    Arc::make_mut(&mut f.mem[i].1).remove(r);
                }
            }
        }
    }

    pub(super) fn apply_upsert(&mut self, ids: Vec<u64>, vectors: Vec<f32>, payloads: Vec<Value>) {
        let ci = self.mem.len();
        let rows = ids.len();
        let rows_by_id = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        let chunk = Arc::new(MemChunk {
            ids,
            vectors,
            payloads,
            rows_by_id,
        });
        self.mem.push((chunk.clone(), Arc::new(RowMask::all(rows))));
        self.mem_rows += rows;
        for (r, &id) in chunk.ids.iter().enumerate() {
            match self.where_is.insert(id, Loc::Mem(ci, r)) {
                Some(old) => self.kill(old, None),
                None => self.points += 1,
            }
        }
        // Size tiers, as LSM stores merge runs: the newest batches are merged while the one
        // before is no bigger, so about log2(rows) batches remain (publishing a snapshot, which
        // copies the list, stays cheap under many small writes) and each row is copied about
        // log2(rows) times. Merging every batch once 64 had piled up copied the whole memtable
        // every 64 single-point writes: tens of milliseconds at 20,000 rows of 384 floats.
        let n = self.mem.len();
        let mut from = n - 1;
        let mut tail = self.mem[from].0.ids.len();
        while from > 0 && self.mem[from - 1].0.ids.len() <= tail {
            from -= 1;
            tail += self.mem[from].0.ids.len();
        }
        if from < n - 1 {
            self.merge_mem(from);
        }
    }

    /// Merges the memtable's batches from `from` on into one (live rows only).
    fn merge_mem(&mut self, from: usize) {
        let dim = self.manifest.dim;
        let (mut ids, mut vectors, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
        for (chunk, live) in &self.mem[from..] {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if live.contains(r) {
                    ids.push(id);
                    vectors.extend_from_slice(&chunk.vectors[r * dim..(r + 1) * dim]);
                    payloads.push(chunk.payloads[r].clone());
                }
            }
        }
        let rows = ids.len();
        for (r, &id) in ids.iter().enumerate() {
            self.where_is.insert(id, Loc::Mem(from, r));
        }
        let rows_by_id = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        let chunk = MemChunk {
            ids,
            vectors,
            payloads,
            rows_by_id,
        };
        self.mem.truncate(from);
        // `mem_rows` stays the rows written since the memtable started: what triggers a flush
        // does not depend on when merges dropped replaced rows.
        self.mem
            .push((Arc::new(chunk), Arc::new(RowMask::all(rows))));
    }

    pub(super) fn apply_delete(&mut self, ids: &[u64]) -> usize {
        let mut n = 0;
        for id in ids {
            if let Some(old) = self.where_is.remove(id) {
                self.kill(old, None);
                self.points -= 1;
                n += 1;
            }
        }
        n
    }

    /// A version-1 collection gets its log (and becomes version 2) on its first write.
    pub(super) fn ensure_log(&mut self, dir: &Path) -> Result<(), StoreError> {
        if self.log.is_some() {
            return Ok(());
        }
        let mut m = self.manifest.clone();
        m.generation = self.next_gen(dir);
        let file = format!("wal-{}.log", m.generation);
        write_synced(&dir.join(&file), wal::MAGIC)?;
        m.log = Some(LogEntry {
            file,
            flushed_lsn: self.next_lsn - 1,
        });
        m.version = LIVE_VERSION;
        self.swap_manifest(dir, &m)?;
        self.manifest = m;
        self.open_log(dir)
    }

    /// Writes `m` as the manifest. When that fails the manifest on disk may be the old one or
    /// `m` (the rename may have happened, its directory sync not), so appending to the old log
    /// could lose writes: the collection turns read-only until a new generation is written.
    fn swap_manifest(&mut self, dir: &Path, m: &LiveManifest) -> Result<(), StoreError> {
        m.write(dir).inspect_err(|e| {
            self.read_only.set(
                format!(
                    "swapping in the manifest of generation {} failed ({e})",
                    m.generation
                ),
                e,
            )
        })
    }

    pub(super) fn open_log(&mut self, dir: &Path) -> Result<(), StoreError> {
        let log = self.manifest.log.as_ref().expect("a log is named");
        let path = dir.join(&log.file);
        let file = faults::open(OpenOptions::new().append(true), &path).map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        self.log = Some(LogFile {
            file,
            path,
            len,
            records: 0,
        });
        Ok(())
    }

    /// Makes room for a write once the memtable holds `flush_rows` rows: with `background`,
    /// freezes it for the flusher (or says to wait when the frozen one is still being flushed;
    /// or, when its flush failed, flushes both here, so the write gets the error); without,
    /// flushes it here.
    pub(super) fn make_room(&mut self, dir: &Path, background: bool) -> Result<Room, StoreError> {
        if self.mem_rows < self.flush_rows {
            return Ok(Room::Ready);
        }
        if !background {
            self.flush_memtable(dir)?;
            return Ok(Room::Flushed);
        }
        match &self.frozen {
            None => {
                self.freeze(dir)?;
                Ok(Room::Froze)
            }
            Some(f) if f.failed.is_none() => Ok(Room::Wait),
            Some(_) => {
                self.new_generation(dir)?;
                Ok(Room::Flushed)
            }
        }
    }

    /// Freezes the memtable: its log is synced and becomes the manifest's `frozen_log`, a new
    /// empty log takes the writes from now on (manifest swapped: a few fsyncs, no segment
    /// written), and the flusher writes the frozen rows into a segment outside the lock.
    fn freeze(&mut self, dir: &Path) -> Result<(), StoreError> {
        if let Some(log) = self.log.as_ref() {
            // Under grouped commit the old log's last writes may wait for a shared fsync that
            // will sync the new log instead: sync the old one now.
            if self.manifest.durability != Durability::Fsync {
                if let Err(e) = faults::sync(&log.file, &log.path, true) {
                    let err = io_err(&log.path)(e);
                    let reason = format!("fsync of {} failed ({err})", log.path.display());
                    self.read_only.set(reason, &err);
                    return Err(err);
                }
            }
        }
        let id = self.next_gen(dir);
        let mut m = self.manifest.clone();
        m.generation = id;
        let file = format!("wal-{id}.log");
        write_synced(&dir.join(&file), wal::MAGIC)?;
        m.frozen_log = m.log.take();
        m.log = Some(LogEntry {
            file,
            flushed_lsn: self.next_lsn - 1,
        });
        self.swap_manifest(dir, &m)?;
        self.manifest = m;
        if let Err(e) = self.open_log(dir) {
            self.read_only
                .set(format!("the new log cannot be opened ({e})"), &e);
            return Err(e);
        }
        self.freeze_in_memory(id);
        Ok(())
    }

    /// Moves the memtable into `frozen` (the ids it holds now live there).
    fn freeze_in_memory(&mut self, id: u64) {
        let mem = std::mem::take(&mut self.mem);
        for (ci, (chunk, live)) in mem.iter().enumerate() {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if live.contains(r) {
                    self.where_is.insert(id, Loc::Frozen(ci, r));
                }
            }
        }
        let at_freeze = (
            mem.iter().map(|(_, l)| l.clone()).collect(),
            self.segments.iter().map(|(_, l)| l.clone()).collect(),
        );
        self.frozen = Some(Frozen {
            id,
            at_freeze,
            mem,
            rows: std::mem::take(&mut self.mem_rows),
            flushing: false,
            failed: None,
        });
        self.reserved = self.reserved.max(id);
    }

    /// The frozen memtable, if one waits for the flusher, marked as being flushed.
    pub(super) fn next_flush(&mut self) -> Option<FlushJob> {
        if self.dropped {
            return None;
        }
        let f = self.frozen.as_mut()?;
        if f.flushing || f.failed.is_some() {
            return None;
        }
        f.flushing = true;
        Some(FlushJob {
            id: f.id,
            mem: f
                .mem
                .iter()
                .zip(&f.at_freeze.0)
                .map(|((c, _), l)| (c.clone(), l.clone()))
                .collect(),
            manifest: self.manifest.clone(),
        })
    }

    /// Marks the flush of `job` failed (the next write that needs room redoes it).
    pub(super) fn flush_failed(&mut self, dir: &Path, job: &FlushJob, why: String) {
        if let Some(f) = self.frozen.as_mut().filter(|f| f.id == job.id) {
            f.flushing = false;
            f.failed = Some(why);
        }
        remove_flush_files(dir, job.id);
    }

    /// Swaps in the segment the flusher wrote for `job` (`None`: every frozen row was dead),
    /// if that frozen memtable is still current: in memory, rows replaced or deleted since the
    /// freeze are dead in it; on disk, new tombstones as of the freeze, the manifest swapped
    /// with the active log kept (replayed on top) and the frozen log dropped. Returns whether
    /// it was swapped in (`false`: a compaction, checkpoint or quantizer change flushed the
    /// frozen rows meanwhile). `written` is the flusher's outcome: a write that failed because
    /// such an operation removed the flush's files meanwhile is no error, only a late one.
    pub(super) fn commit_flush(
        &mut self,
        dir: &Path,
        job: &FlushJob,
        written: Result<Option<Segment>, StoreError>,
    ) -> Result<bool, StoreError> {
        if self.dropped {
            // The directory is gone, or is already another collection's.
            return Ok(false);
        }
        if self.frozen.as_ref().is_none_or(|f| f.id != job.id) {
            remove_flush_files(dir, job.id);
            return Ok(false);
        }
        let seg = written?;
        if let Some((reason, _)) = self.read_only.get() {
            return Err(StoreError::Internal(format!(
                "the collection is read-only ({reason}); the next write flushes"
            )));
        }
        let at_freeze = &self.frozen.as_ref().expect("checked above").at_freeze.1;
        if at_freeze.len() != self.segments.len() {
            return Err(StoreError::Internal(
                "the segments changed while a flush was under way".into(),
            ));
        }
        // On disk: every segment as of the freeze, the new one whole; the active log's
        // records (after the freeze) are replayed on top.
        let mut on_disk: Vec<(Arc<Segment>, Live)> = self
            .segments
            .iter()
            .zip(at_freeze)
            .map(|((s, _), l)| (s.clone(), l.clone()))
            .collect();
        let mut segments = self.segments.clone();
        if let Some(seg) = seg {
            let rows = seg.rows();
            let mut live = RowMask::all(rows);
            for (r, id) in seg.index.ids().iter().enumerate() {
                if !matches!(self.where_is.get(id), Some(Loc::Frozen(..))) {
                    live.remove(r);
                }
            }
            let seg = Arc::new(seg);
            on_disk.push((seg.clone(), Arc::new(RowMask::all(rows))));
            segments.push((seg, Arc::new(live)));
        }
        let generation = self.next_gen(dir);
        let mut m = self.manifest.clone();
        m.generation = generation;
        m.segments = on_disk.iter().map(|(s, _)| s.entry.clone()).collect();
        m.rows = on_disk.iter().map(|(_, l)| l.count()).sum();
        m.tombstones = write_tombstones(dir, generation, &on_disk)?;
        m.frozen_log = None;
        sync_dir(dir)?;
        self.swap_manifest(dir, &m)?;
        self.manifest = m;
        if segments.len() > self.segments.len() {
            let i = segments.len() - 1;
            let (seg, live) = &segments[i];
            for (r, &id) in seg.index.ids().iter().enumerate() {
                if live.contains(r) {
                    self.where_is.insert(id, Loc::Seg(i, r));
                }
            }
        }
        self.segments = segments;
        self.frozen = None;
        remove_stale(dir, &self.keep_files());
        Ok(true)
    }

    /// The live memtable rows, in id order: ids, vectors, payloads.
    pub(super) fn live_mem(&self) -> (Vec<u64>, Vec<f32>, Vec<Value>) {
        let dim = self.manifest.dim;
        let mut rows: Vec<(u64, &MemChunk, usize)> = Vec::new();
        for (chunk, live) in self.frozen_chunks().chain(&self.mem) {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if live.contains(r) {
                    rows.push((id, chunk, r));
                }
            }
        }
        rows.sort_unstable_by_key(|x| x.0);
        let mut ids = Vec::with_capacity(rows.len());
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        let mut payloads = Vec::with_capacity(rows.len());
        for (id, c, r) in rows {
            ids.push(id);
            vectors.extend_from_slice(&c.vectors[r * dim..(r + 1) * dim]);
            payloads.push(c.payloads[r].clone());
        }
        (ids, vectors, payloads)
    }

    /// Moves the live memtable rows into a new segment and starts a new log.
    pub(super) fn flush_memtable(&mut self, dir: &Path) -> Result<(), StoreError> {
        if self.mem.is_empty()
            && self.frozen.is_none()
            && self.log.as_ref().is_none_or(|l| l.records == 0)
        {
            return Ok(());
        }
        self.new_generation(dir)
    }

    /// Writes a new generation from memory: the memtable as a new segment, new tombstones, a
    /// new empty log, the manifest swapped. Depends on no file written since the last
    /// generation, so it also clears a read-only state (see `read_only.rs`).
    pub(super) fn new_generation(&mut self, dir: &Path) -> Result<(), StoreError> {
        let generation = self.next_gen(dir);
        let (ids, vectors, payloads) = self.live_mem();
        let mut segments: Vec<(Arc<Segment>, Live)> = self.segments.clone();
        let quantizer = self.manifest.quantizer.clone();
        if !ids.is_empty() {
            let seg = write_segment(
                dir,
                generation,
                &self.manifest,
                &quantizer,
                ids,
                vectors,
                payloads,
            )?;
            let rows = seg.rows();
            segments.push((Arc::new(seg), Arc::new(RowMask::all(rows))));
        }
        self.commit(dir, generation, segments, quantizer)
    }

    /// Rewrites every live point into one segment encoded with `quantizer` (compaction, quantizer
    /// change). Without an f32 copy: memtable flushed, and each segment with dead rows rewritten
    /// without them by copying codes (see [`LiveCollection::compact`](super::LiveCollection::compact)).
    pub(super) fn rebuild(&mut self, dir: &Path, quantizer: &str) -> Result<(), StoreError> {
        let dim = self.manifest.dim;
        if self.manifest.keep != Keep::F32 {
            // No vectors to re-encode: each segment keeps its fitted quantizer and loses its
            // dead rows (codes copied as they are); segments are not merged.
            self.flush_memtable(dir)?;
            let generation = self.next_gen(dir);
            let mut kept: Vec<(Arc<Segment>, Live)> = Vec::new();
            let mut changed = false;
            for (i, (seg, live)) in self.segments.iter().enumerate() {
                let alive: Vec<usize> = (0..seg.rows()).filter(|&r| live.contains(r)).collect();
                if alive.len() == seg.rows() {
                    kept.push((seg.clone(), live.clone()));
                    continue;
                }
                changed = true;
                if alive.is_empty() {
                    continue;
                }
                let index = seg.index.select_rows(&alive)?;
                let payloads: Vec<Value> = alive.iter().map(|&r| seg.payloads[r].clone()).collect();
                let name = format!("{generation}-{i}");
                let new = save_segment(
                    dir,
                    &name,
                    &self.manifest,
                    &self.manifest.quantizer,
                    &index,
                    &payloads,
                )?;
                kept.push((Arc::new(new), Arc::new(RowMask::all(alive.len()))));
            }
            if !changed {
                return Ok(());
            }
            return self.commit(dir, generation, kept, quantizer.to_owned());
        }
        let mut rows: Vec<(u64, &[f32], &Value)> = Vec::with_capacity(self.points);
        for (seg, live) in &self.segments {
            for (r, &id) in seg.index.ids().iter().enumerate() {
                if live.contains(r) {
                    let v = seg.vector(r).ok_or_else(|| StoreError::Segment {
                        path: dir.join(&seg.entry.file),
                        reason: "keeps no f32 copy though the manifest says it does".into(),
                        fix: Fix::Restore,
                    })?;
                    rows.push((id, v, &seg.payloads[r]));
                }
            }
        }
        for (chunk, live) in self.frozen_chunks().chain(&self.mem) {
            for (r, &id) in chunk.ids.iter().enumerate() {
                if live.contains(r) {
                    rows.push((
                        id,
                        &chunk.vectors[r * dim..(r + 1) * dim],
                        &chunk.payloads[r],
                    ));
                }
            }
        }
        rows.sort_unstable_by_key(|x| x.0);
        let generation = self.next_gen(dir);
        let mut segments = Vec::new();
        if !rows.is_empty() {
            let ids = rows.iter().map(|r| r.0).collect();
            let vectors = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
            let payloads = rows.iter().map(|r| r.2.clone()).collect();
            let seg = write_segment(
                dir,
                generation,
                &self.manifest,
                quantizer,
                ids,
                vectors,
                payloads,
            )?;
            let n = seg.rows();
            segments.push((Arc::new(seg), Arc::new(RowMask::all(n))));
        }
        self.commit(dir, generation, segments, quantizer.to_owned())
    }

    /// Makes `segments` (with their live masks) generation `generation` with an empty memtable
    /// and a new empty log: tombstones and log written and synced, manifest swapped, writer
    /// state switched, older files deleted.
    pub(super) fn commit(
        &mut self,
        dir: &Path,
        generation: u64,
        segments: Vec<(Arc<Segment>, Live)>,
        quantizer: String,
    ) -> Result<(), StoreError> {
        let mut m = self.manifest.clone();
        m.generation = generation;
        m.version = LIVE_VERSION;
        m.quantizer = quantizer;
        m.segments = segments.iter().map(|(s, _)| s.entry.clone()).collect();
        m.rows = segments.iter().map(|(_, l)| l.count()).sum();
        m.tombstones = write_tombstones(dir, generation, &segments)?;
        m.frozen_log = None;
        let log = format!("wal-{generation}.log");
        write_synced(&dir.join(&log), wal::MAGIC)?;
        m.log = Some(LogEntry {
            file: log,
            flushed_lsn: self.next_lsn - 1,
        });
        sync_dir(dir)?;
        self.swap_manifest(dir, &m)?;
        // The new generation is current: switch to it.
        self.manifest = m;
        if let Err(e) = self.open_log(dir) {
            // The files on disk are right but this writer no longer matches them.
            self.read_only
                .set(format!("the new log cannot be opened ({e})"), &e);
            return Err(e);
        }
        self.where_is.clear();
        self.points = 0;
        for (i, (seg, live)) in segments.iter().enumerate() {
            for (r, &id) in seg.index.ids().iter().enumerate() {
                if live.contains(r) {
                    self.where_is.insert(id, Loc::Seg(i, r));
                    self.points += 1;
                }
            }
        }
        self.segments = segments;
        self.mem.clear();
        self.mem_rows = 0;
        // A flush under way finds its frozen memtable gone and deletes its files.
        self.frozen = None;
        remove_stale(dir, &self.keep_files());
        Ok(())
    }

    /// The files the manifest names, the index file being built, and the segment being
    /// flushed, with their temporary twins.
    fn keep_files(&self) -> HashSet<String> {
        let mut keep = self.manifest.files();
        let flushing = self.frozen.as_ref().filter(|f| f.flushing);
        let names = self
            .building
            .iter()
            .cloned()
            .chain(flushing.into_iter().flat_map(|f| flush_files(f.id)));
        for b in names {
            keep.insert(format!("{b}.tmp"));
            keep.insert(b);
        }
        keep
    }

    /// The next segment due for its index: at least `min_rows` rows, holding another kind than
    /// the configured one, and not failed before. Marks its file as being built.
    pub(super) fn next_build(&mut self, dir: &Path) -> Option<BuildJob> {
        let want = self.manifest.index;
        if want.is_flat() || self.dropped || self.read_only.get().is_some() {
            return None;
        }
        let (seg, _) = self.segments.iter().find(|(s, _)| {
            s.rows() >= want.min_rows
                && s.kind() != want.kind
                && s.index.kept_f32().is_some()
                && !self.failed_builds.contains(&s.entry.file)
        })?;
        let stem = seg.entry.file.strip_suffix(".bitseek")?;
        let stem = stem.strip_prefix("seg-").unwrap_or(stem);
        // seg-<g>-<kind>-<old stem>.bitseek: a generation no other file has, so no later flush
        // takes its name.
        let g = self.next_gen(dir);
        let file = format!("seg-{g}-{}-{stem}.bitseek", want.kind.name());
        self.building = Some(file.clone());
        Some(BuildJob {
            segment: seg.clone(),
            kind: want.kind,
            degree: want.degree,
            file,
        })
    }

    /// Swaps `built` in for the segment `job` indexed, if that segment is still current: a new
    /// manifest generation names the built file in the segment's place (written atomically),
    /// then the flat file is deleted. A crash before the manifest lands leaves the flat segment
    /// and an orphan build file (deleted on open); after, the built one. Returns whether it
    /// was swapped in (`false`: compaction or a quantizer change replaced the segment
    /// meanwhile, and the built file was deleted).
    pub(super) fn swap_index(
        &mut self,
        dir: &Path,
        job: &BuildJob,
        built: Segment,
    ) -> Result<bool, StoreError> {
        self.building = None;
        let Some(i) = self
            .segments
            .iter()
            .position(|(s, _)| Arc::ptr_eq(s, &job.segment))
        else {
            let _ = fs::remove_file(dir.join(&job.file));
            return Ok(false);
        };
        let mut m = self.manifest.clone();
        m.generation = self.next_gen(dir);
        m.segments[i] = built.entry.clone();
        self.swap_manifest(dir, &m)?;
        self.manifest = m;
        self.segments[i].0 = Arc::new(built);
        remove_stale(dir, &self.keep_files());
        Ok(true)
    }
}

/// The files the flush of frozen memtable `id` writes.
fn flush_files(id: u64) -> [String; 2] {
    [format!("seg-{id}.bitseek"), format!("payloads-{id}.jsonl")]
}

/// Deletes what the flush of frozen memtable `id` wrote. Best effort.
fn remove_flush_files(dir: &Path, id: u64) {
    for f in flush_files(id) {
        let _ = fs::remove_file(dir.join(format!("{f}.tmp")));
        let _ = fs::remove_file(dir.join(f));
    }
}

//! The write-ahead log: every acknowledged upsert and delete, in order, until a flush moves them
//! into a segment.
//!
//! ```text
//! file    := magic record*
//! magic   := "BSWAL001" (8 bytes)
//! record  := len: u32 LE | xxh3-64(body): u64 LE | body (len bytes)
//! body    := lsn: u64 LE | kind: u8 | count: u32 LE | entry*
//! upsert  := id: u64 LE | dim × f32 LE | payload_len: u32 LE | payload (JSON, UTF-8)
//! delete  := id: u64 LE
//! ```
//!
//! A record is appended whole with one `write` and made durable with `fsync` (or a grouped
//! `fsync`, see [`Durability`](crate::db::Durability)) before the write is acknowledged. A crash
//! can only leave a *torn tail*: a record cut short or half-written. The disk can do worse and
//! damage bytes in the middle (a bad sector, a bit flip, a zero-filled page), so [`scan`]
//! *resynchronises*: after a bad record it searches forward byte by byte for the next offset
//! where a whole record parses, its checksum matches and its sequence number is greater than the
//! last good one. If it finds one, the bytes in between are a [`Skipped`] region and reading goes
//! on; if not, the damage runs to the end of the file and is cut like a torn tail.
//!
//! The format is unchanged, so the search leans on the 64-bit checksum: a damaged or foreign
//! candidate passes only if 8 stored bytes equal the xxh3 of the body they declare, about 2^-64
//! per offset. Skipping a whole 1 GiB log byte by byte tries 2^30 offsets, a false match chance
//! near 2^-34 (6 × 10^-11); a damaged record is usually a few hundred bytes, about 2^-56. Only
//! bytes crafted on purpose (a payload holding a whole valid record) beat those odds, and only
//! when the disk damages the record holding them: the forged record replaces a lost write and is
//! still reported as a skipped region. Resynchronising costs a bounded-length header check per
//! byte and a hash only where the header is plausible.

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

/// The first 8 bytes of every log file.
pub const MAGIC: &[u8; 8] = b"BSWAL001";
/// Bytes before a record's body: length and checksum.
pub const RECORD_HEADER: usize = 12;
/// Largest body a record may declare (1 GiB): a bigger length is damage, not data.
pub const MAX_BODY: usize = 1 << 30;

const KIND_UPSERT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// One logged operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Insert or replace these points (`vectors` row-major, one row per id).
    Upsert {
        /// The points' ids.
        ids: Vec<u64>,
        /// Their vectors, row-major.
        vectors: Vec<f32>,
        /// Their payloads.
        payloads: Vec<Value>,
    },
    /// Delete these ids.
    Delete {
        /// The ids to delete.
        ids: Vec<u64>,
    },
}

/// A record: the operation and its log sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// The log sequence number: one more than the previous record's.
    pub lsn: u64,
    /// What was done.
    pub op: Op,
}

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the header or the declared body: a torn tail.
    #[error("record is cut short ({have} of {need} bytes)")]
    Short {
        /// Bytes there are.
        have: usize,
        /// Bytes the record needs.
        need: usize,
    },
    /// The declared body length is implausible.
    #[error("record declares a body of {0} bytes, more than the {MAX_BODY}-byte limit")]
    TooLong(usize),
    /// The body does not match its checksum.
    #[error("record checksum mismatch (stored {stored:016x}, computed {computed:016x})")]
    Checksum {
        /// The checksum in the record.
        stored: u64,
        /// The checksum of the body read.
        computed: u64,
    },
    /// The checksum matches but the body does not decode (written by a different layout).
    #[error("record body is malformed: {0}")]
    Malformed(String),
}

/// Encodes `record` (vectors of dimension `dim`) as it is written to the log.
pub fn encode(record: &LogRecord, dim: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&record.lsn.to_le_bytes());
    match &record.op {
        Op::Upsert {
            ids,
            vectors,
            payloads,
        } => {
            debug_assert_eq!(vectors.len(), ids.len() * dim);
            debug_assert_eq!(payloads.len(), ids.len());
            body.push(KIND_UPSERT);
            body.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for (i, id) in ids.iter().enumerate() {
                body.extend_from_slice(&id.to_le_bytes());
                for v in &vectors[i * dim..(i + 1) * dim] {
                    body.extend_from_slice(&v.to_le_bytes());
                }
                let json = serde_json::to_vec(&payloads[i]).expect("JSON values serialise");
                body.extend_from_slice(&(json.len() as u32).to_le_bytes());
                body.extend_from_slice(&json);
            }
        }
        Op::Delete { ids } => {
            body.push(KIND_DELETE);
            body.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for id in ids {
                body.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(RECORD_HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses the record at the start of `bytes` (vectors of dimension `dim`); returns it and the
/// number of bytes it took. Never panics, whatever the bytes.
pub fn parse_record(bytes: &[u8], dim: usize) -> Result<(LogRecord, usize), RecordError> {
    if bytes.len() < RECORD_HEADER {
        return Err(RecordError::Short {
            have: bytes.len(),
            need: RECORD_HEADER,
        });
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_BODY {
        return Err(RecordError::TooLong(len));
    }
    let need = RECORD_HEADER + len;
    if bytes.len() < need {
        return Err(RecordError::Short {
            have: bytes.len(),
            need,
        });
    }
    let stored = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
    let body = &bytes[RECORD_HEADER..need];
    let computed = xxh3_64(body);
    if stored != computed {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok((decode_body(body, dim)?, need))
}

/// A little-endian reader over a record body.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < n {
            return Err(RecordError::Malformed(format!(
                "body ends inside {what} ({} bytes left, {n} needed)",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u64(&mut self, what: &str) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    fn u32(&mut self, what: &str) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
}

fn decode_body(body: &[u8], dim: usize) -> Result<LogRecord, RecordError> {
    let mut r = Reader { bytes: body };
    let lsn = r.u64("the sequence number")?;
    let kind = r.take(1, "the kind")?[0];
    let count = r.u32("the count")? as usize;
    // Every entry takes at least 8 bytes: a count the body cannot hold is damage.
    if count > r.bytes.len() / 8 {
        return Err(RecordError::Malformed(format!(
            "{count} entries cannot fit in {} bytes",
            r.bytes.len()
        )));
    }
    let op = match kind {
        KIND_UPSERT => {
            let mut ids = Vec::with_capacity(count);
            let mut vectors = Vec::with_capacity(count.saturating_mul(dim).min(1 << 24));
            let mut payloads = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.u64("an id")?);
                let raw = r.take(dim.saturating_mul(4), "a vector")?;
                vectors.extend(
                    raw.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
                );
                let n = r.u32("a payload length")? as usize;
                let json = r.take(n, "a payload")?;
                let v = serde_json::from_slice(json)
                    .map_err(|e| RecordError::Malformed(format!("payload is not JSON: {e}")))?;
                payloads.push(v);
            }
            Op::Upsert {
                ids,
                vectors,
                payloads,
            }
        }
        KIND_DELETE => {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.u64("an id")?);
            }
            Op::Delete { ids }
        }
        other => return Err(RecordError::Malformed(format!("unknown kind {other}"))),
    };
    if !r.bytes.is_empty() {
        return Err(RecordError::Malformed(format!(
            "{} bytes after the last entry",
            r.bytes.len()
        )));
    }
    Ok(LogRecord { lsn, op })
}

/// Smallest body: sequence number, kind and count, no entry.
const MIN_BODY: usize = 8 + 1 + 4;

/// What [`scan`] found in a log file.
#[derive(Debug)]
pub struct Scan {
    /// The good records, in order.
    pub records: Vec<LogRecord>,
    /// Where the good part of the file ends (magic, records and skipped regions): where a torn
    /// tail is cut.
    pub good_len: usize,
    /// Damaged regions in the middle, with intact records after them, in file order.
    pub skipped: Vec<Skipped>,
    /// Why reading stopped before the end of the file (a torn tail), if it did.
    pub stopped: Option<RecordError>,
}

/// A damaged region of the log that [`scan`] stepped over to reach later intact records.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The damaged bytes: from the start of the first bad record to the start of the next good
    /// one.
    pub bytes: std::ops::Range<usize>,
    /// Why the record at `bytes.start` was refused.
    pub why: RecordError,
    /// The sequence number of the last good record before the region (`None`: none before it).
    pub lsn_before: Option<u64>,
    /// The sequence number of the first good record after it. Sequence numbers go up by one per
    /// record, so those strictly between `lsn_before` and this one were in the damaged bytes.
    pub lsn_after: u64,
}

/// Reads every good record of a log file's bytes, stepping over damaged regions in the middle
/// (see the [module docs](self)) and stopping at a torn tail.
///
/// Sequence numbers must increase; a record whose number does not is treated as damage. Fails
/// only when the file does not start with [`MAGIC`] (or a prefix of it: that reads as an empty
/// log whose tail was cut).
pub fn scan(bytes: &[u8], dim: usize) -> Result<Scan, String> {
    if bytes.len() < MAGIC.len() {
        if MAGIC.starts_with(bytes) {
            return Ok(Scan {
                records: Vec::new(),
                good_len: 0,
                skipped: Vec::new(),
                // Log files are created whole (magic included) by rename, so even an empty one
                // has lost bytes: say so.
                stopped: Some(RecordError::Short {
                    have: bytes.len(),
                    need: MAGIC.len(),
                }),
            });
        }
        return Err("file is too short to be a bitseek write-ahead log".into());
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(format!(
            "file starts with {:?}, not the write-ahead log magic {:?}",
            String::from_utf8_lossy(&bytes[..MAGIC.len()]),
            String::from_utf8_lossy(MAGIC)
        ));
    }
    let mut pos = MAGIC.len();
    let mut records: Vec<LogRecord> = Vec::new();
    let mut skipped = Vec::new();
    let mut stopped = None;
    while pos < bytes.len() {
        let last = records.last().map(|r| r.lsn);
        let why = match parse_record(&bytes[pos..], dim) {
            Ok((rec, used)) if last.is_none_or(|l| rec.lsn > l) => {
                records.push(rec);
                pos += used;
                continue;
            }
            Ok((rec, _)) => RecordError::Malformed(format!(
                "sequence number {} does not follow {}",
                rec.lsn,
                last.unwrap_or_default()
            )),
            Err(e) => e,
        };
        match resync(bytes, pos + 1, last, dim) {
            Some((at, rec, used)) => {
                skipped.push(Skipped {
                    bytes: pos..at,
                    why,
                    lsn_before: last,
                    lsn_after: rec.lsn,
                });
                records.push(rec);
                pos = at + used;
            }
            None => {
                stopped = Some(why);
                break;
            }
        }
    }
    Ok(Scan {
        records,
        good_len: pos,
        skipped,
        stopped,
    })
}

/// The first offset at or after `from` where a good record with a sequence number above `last`
/// starts, with that record and its length.
fn resync(
    bytes: &[u8],
    from: usize,
    last: Option<u64>,
    dim: usize,
) -> Option<(usize, LogRecord, usize)> {
    let end = bytes.len().checked_sub(RECORD_HEADER + MIN_BODY)?;
    (from..=end).find_map(|at| {
        let rest = &bytes[at..];
        // Cheap refusals before hashing: the length must fit what is left, and the sequence
        // number and kind must be possible.
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if !(MIN_BODY..=rest.len() - RECORD_HEADER).contains(&len) {
            return None;
        }
        let body = &rest[RECORD_HEADER..];
        let lsn = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
        if last.is_some_and(|l| lsn <= l) || ![KIND_UPSERT, KIND_DELETE].contains(&body[8]) {
            return None;
        }
        let (rec, used) = parse_record(rest, dim).ok()?;
        Some((at, rec, used))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<LogRecord> {
        vec![
            LogRecord {
                lsn: 1,
                op: Op::Upsert {
                    ids: vec![7, 3],
                    vectors: vec![1.0, 2.0, 3.0, -4.0, 0.5, 6.0],
                    payloads: vec![json!({"lang": "rust"}), json!(null)],
                },
            },
            LogRecord {
                lsn: 2,
                op: Op::Delete { ids: vec![7, 99] },
            },
            LogRecord {
                lsn: 5,
                op: Op::Upsert {
                    ids: vec![],
                    vectors: vec![],
                    payloads: vec![],
                },
            },
        ]
    }

    fn file(records: &[LogRecord]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for r in records {
            out.extend(encode(r, 3));
        }
        out
    }

    #[test]
    fn round_trip() {
        let recs = sample();
        let bytes = file(&recs);
        let s = scan(&bytes, 3).unwrap();
        assert_eq!(s.records, recs);
        assert_eq!(s.good_len, bytes.len());
        assert!(s.stopped.is_none());
    }

    #[test]
    fn every_truncation_keeps_exactly_the_whole_records() {
        let recs = sample();
        let bytes = file(&recs);
        let mut ends = vec![MAGIC.len()];
        for r in &recs {
            ends.push(ends.last().unwrap() + encode(r, 3).len());
        }
        for cut in MAGIC.len()..bytes.len() {
            let s = scan(&bytes[..cut], 3).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(s.records, recs[..whole], "cut at {cut}");
            assert_eq!(s.good_len, ends[whole]);
            assert_eq!(s.stopped.is_some(), cut != ends[whole]);
        }
    }

    /// Where each record of `file(recs)` starts, and where the file ends.
    fn starts(recs: &[LogRecord]) -> Vec<usize> {
        let mut at = vec![MAGIC.len()];
        for r in recs {
            at.push(at.last().unwrap() + encode(r, 3).len());
        }
        at
    }

    #[test]
    fn every_bit_flip_loses_exactly_its_record() {
        let recs = sample();
        let bytes = file(&recs);
        let at = starts(&recs);
        for pos in MAGIC.len()..bytes.len() {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[pos] ^= 1 << bit;
                let s = scan(&b, 3).unwrap();
                let k = at.iter().rposition(|&a| a <= pos).unwrap();
                let mut kept = recs.clone();
                kept.remove(k);
                assert_eq!(s.records, kept, "flip at {pos}");
                if k + 1 == recs.len() {
                    // Nothing intact follows: a torn tail, cut.
                    assert!(s.skipped.is_empty() && s.stopped.is_some());
                    assert_eq!(s.good_len, at[k]);
                } else {
                    assert_eq!(s.stopped, None, "flip at {pos}");
                    assert_eq!(s.good_len, bytes.len());
                    assert_eq!(s.skipped.len(), 1);
                    let gap = &s.skipped[0];
                    assert_eq!(gap.bytes, at[k]..at[k + 1]);
                    assert_eq!(gap.lsn_before, k.checked_sub(1).map(|i| recs[i].lsn));
                    assert_eq!(gap.lsn_after, recs[k + 1].lsn);
                }
            }
        }
    }

    #[test]
    fn zero_filled_middle_is_skipped_and_garbage_between_records_loses_nothing() {
        let recs = sample();
        let at = starts(&recs);
        let mut bytes = file(&recs);
        // Zeros from inside record 0 to inside record 1: both are lost, record 2 survives.
        bytes[at[0] + 5..at[1] + 7].fill(0);
        let s = scan(&bytes, 3).unwrap();
        assert_eq!(s.records, recs[2..]);
        assert_eq!(s.skipped[0].bytes, at[0]..at[2]);
        assert_eq!((s.skipped[0].lsn_before, s.skipped[0].lsn_after), (None, 5));
        // Bytes inserted between two records lose no record.
        let mut bytes = file(&recs);
        bytes.splice(at[1]..at[1], [0xAB; 37]);
        let s = scan(&bytes, 3).unwrap();
        assert_eq!(s.records, recs);
        assert_eq!(s.skipped[0].bytes, at[1]..at[1] + 37);
        assert_eq!(
            (s.skipped[0].lsn_before, s.skipped[0].lsn_after),
            (Some(1), 2)
        );
    }

    #[test]
    fn zero_filled_tail_is_cut() {
        let recs = sample();
        let mut bytes = file(&recs);
        let good = bytes.len();
        bytes.extend(std::iter::repeat_n(0u8, 4096));
        let s = scan(&bytes, 3).unwrap();
        assert_eq!(s.records, recs);
        assert_eq!(s.good_len, good);
        assert!(s.stopped.is_some());
    }

    #[test]
    fn bad_magic_is_an_error_and_partial_magic_is_empty() {
        assert!(scan(b"NOTAWAL!xxxxxxxx", 3).is_err());
        assert!(scan(b"x", 3).is_err());
        let s = scan(&MAGIC[..3], 3).unwrap();
        assert!(s.records.is_empty());
        assert_eq!(s.good_len, 0);
        let s = scan(b"", 3).unwrap();
        assert!(s.records.is_empty() && s.stopped.is_some());
    }

    #[test]
    fn a_record_whose_sequence_number_does_not_increase_is_damage() {
        let mut recs = sample();
        recs[2].lsn = 2;
        let s = scan(&file(&recs), 3).unwrap();
        assert_eq!(s.records.len(), 2);
        assert!(matches!(s.stopped, Some(RecordError::Malformed(_))));
        // In the middle it is stepped over, like any other damage.
        recs.push(LogRecord {
            lsn: 3,
            op: Op::Delete { ids: vec![1] },
        });
        let s = scan(&file(&recs), 3).unwrap();
        assert_eq!(s.records, [&recs[..2], &recs[3..]].concat());
        assert_eq!(s.skipped.len(), 1);
        assert_eq!(s.stopped, None);
    }

    #[test]
    fn huge_counts_and_lengths_are_refused_without_allocating() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.push(KIND_UPSERT);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut rec = (body.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&xxh3_64(&body).to_le_bytes());
        rec.extend_from_slice(&body);
        assert!(matches!(
            parse_record(&rec, 3),
            Err(RecordError::Malformed(_))
        ));
        let mut big = u32::MAX.to_le_bytes().to_vec();
        big.extend_from_slice(&[0; 8]);
        assert!(matches!(
            parse_record(&big, 3),
            Err(RecordError::TooLong(_))
        ));
    }

    mod damage {
        use super::*;
        use proptest::prelude::*;

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                prop::collection::vec((any::<u64>(), -1e3f32..1e3, any::<i32>()), 0..3).prop_map(
                    |pts| Op::Upsert {
                        ids: pts.iter().map(|p| p.0).collect(),
                        vectors: pts.iter().flat_map(|p| [p.1, -p.1, 0.5]).collect(),
                        payloads: pts.iter().map(|p| json!({ "n": p.2 })).collect(),
                    }
                ),
                prop::collection::vec(any::<u64>(), 0..4).prop_map(|ids| Op::Delete { ids }),
            ]
        }

        fn log() -> impl Strategy<Value = Vec<LogRecord>> {
            (0..1000u64, prop::collection::vec(op(), 1..10)).prop_map(|(base, ops)| {
                ops.into_iter()
                    .enumerate()
                    .map(|(i, op)| LogRecord {
                        lsn: base + 1 + i as u64,
                        op,
                    })
                    .collect()
            })
        }

        /// What `scan` must make of `file(recs)` once the records in `hit` (a non-empty run of
        /// indices) are damaged: every other record kept, and `hit` skipped as one region, or
        /// cut as a torn tail when it reaches the last record.
        fn check(recs: &[LogRecord], bytes: &[u8], hit: std::ops::RangeInclusive<usize>) {
            let at = starts(recs);
            let s = scan(bytes, 3).unwrap();
            let (k, m) = (*hit.start(), *hit.end());
            if m + 1 == recs.len() {
                assert_eq!(s.records, recs[..k]);
                assert!(s.skipped.is_empty() && s.stopped.is_some());
                assert_eq!(s.good_len, at[k]);
            } else {
                assert_eq!(s.records, [&recs[..k], &recs[m + 1..]].concat());
                assert_eq!(s.stopped, None);
                assert_eq!(s.skipped.len(), 1);
                let gap = &s.skipped[0];
                assert_eq!(gap.bytes, at[k]..at[m + 1]);
                assert_eq!(gap.lsn_before, k.checked_sub(1).map(|i| recs[i].lsn));
                assert_eq!(gap.lsn_after, recs[m + 1].lsn);
            }
        }

        proptest! {
            /// Changing any run of bytes loses exactly the records it touches.
            #[test]
            fn damaged_bytes_lose_exactly_the_records_they_touch(
                recs in log(),
                start in any::<prop::sample::Index>(),
                xor in prop::collection::vec(1u8..=255, 1..64),
            ) {
                let mut bytes = file(&recs);
                let at = starts(&recs);
                let start = MAGIC.len() + start.index(bytes.len() - MAGIC.len());
                let end = (start + xor.len()).min(bytes.len());
                for (b, x) in bytes[start..end].iter_mut().zip(&xor) {
                    *b ^= x;
                }
                let first = at.iter().rposition(|&a| a <= start).unwrap();
                let last = at.iter().rposition(|&a| a < end).unwrap();
                check(&recs, &bytes, first..=last);
            }

            /// Any wrong length loses only its own record: the search for the next record
            /// starts one byte after the damaged one, not where the wrong length points.
            #[test]
            fn a_wrong_length_loses_only_its_record(
                recs in log(),
                which in any::<prop::sample::Index>(),
                len in any::<u32>(),
            ) {
                let mut bytes = file(&recs);
                let at = starts(&recs);
                let k = which.index(recs.len());
                let true_len = (at[k + 1] - at[k] - RECORD_HEADER) as u32;
                prop_assume!(len != true_len);
                bytes[at[k]..at[k] + 4].copy_from_slice(&len.to_le_bytes());
                check(&recs, &bytes, k..=k);
            }
        }
    }
}

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
//! can only leave a *torn tail*: a record cut short or half-written. [`scan`] reads records until
//! the first one that is incomplete or fails its checksum and reports where the good prefix
//! ends, so opening cuts the tail there and says what it cut.

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

/// What [`scan`] found in a log file.
#[derive(Debug)]
pub struct Scan {
    /// The good records, in order.
    pub records: Vec<LogRecord>,
    /// Bytes of the good prefix (magic and good records): where the tail is cut.
    pub good_len: usize,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped: Option<RecordError>,
}

/// Reads every good record of a log file's bytes, stopping at the first bad one.
///
/// Sequence numbers must increase; a record whose number does not is treated as damage and
/// ends the good prefix too. Fails only when the file does not start with [`MAGIC`] (or a prefix
/// of it: that reads as an empty log whose tail was cut).
pub fn scan(bytes: &[u8], dim: usize) -> Result<Scan, String> {
    if bytes.len() < MAGIC.len() {
        if MAGIC.starts_with(bytes) {
            return Ok(Scan {
                records: Vec::new(),
                good_len: 0,
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
    let mut stopped = None;
    while pos < bytes.len() {
        match parse_record(&bytes[pos..], dim) {
            Ok((rec, used)) => {
                if let Some(last) = records.last() {
                    if rec.lsn <= last.lsn {
                        stopped = Some(RecordError::Malformed(format!(
                            "sequence number {} does not follow {}",
                            rec.lsn, last.lsn
                        )));
                        break;
                    }
                }
                records.push(rec);
                pos += used;
            }
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    Ok(Scan {
        records,
        good_len: pos,
        stopped,
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

    #[test]
    fn every_bit_flip_is_caught() {
        let recs = sample();
        let bytes = file(&recs);
        for pos in MAGIC.len()..bytes.len() {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[pos] ^= 1 << bit;
                let s = scan(&b, 3).unwrap();
                // Whatever survives is an unchanged prefix of the true records.
                assert!(s.records.len() < recs.len(), "flip at {pos} went unnoticed");
                assert_eq!(s.records, recs[..s.records.len()]);
                assert!(s.stopped.is_some());
            }
        }
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
    fn decreasing_sequence_numbers_end_the_good_prefix() {
        let mut recs = sample();
        recs[2].lsn = 2;
        let s = scan(&file(&recs), 3).unwrap();
        assert_eq!(s.records.len(), 2);
        assert!(matches!(s.stopped, Some(RecordError::Malformed(_))));
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
}

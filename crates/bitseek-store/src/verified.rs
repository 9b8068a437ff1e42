//! The record of what a [`GenerationCollection`](crate::GenerationCollection) verified, so that
//! opening it costs nothing the second time.
//!
//! Verifying a generation (every section checksum of its segment, the payload file's checksum and
//! every payload line) reads all its bytes: at 100k units that was most of a search. So the first
//! open of a generation verifies it fully and then writes `verified.json` beside the manifest:
//!
//! ```text
//! {"generation": 7, "files": [{"file": "manifest.json", "len", "modified_ns", "inode"},
//!                             {"file": "seg-7.bitseek", …}, {"file": "payloads-7.jsonl", …}]}
//! ```
//!
//! Later opens whose manifest names the same generation and whose files still have exactly those
//! identities (length, modification time, inode) skip the checksums and read payloads lazily.
//! Anything else (a new generation, a file replaced, rewritten or touched, no stamp, an unreadable
//! stamp) verifies again. What a stamp cannot see is damage that keeps a file's length and times
//! (a disk flipping bits under it): `bitseek index --verify` ([`GenerationCollection::verify`])
//! checks everything regardless of the stamp, and every full read of a file (the payloads for a
//! filter, the code index's lexical file) checks its checksum.
//!
//! The stamp is a cache: written best effort (temporary file and rename, not synced), a lost or
//! stale one only costs the next open a verification.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// The stamp's file name inside the collection directory.
pub(crate) const VERIFIED: &str = "verified.json";

/// What a file looked like when it was verified.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Identity {
    file: String,
    len: u64,
    modified_ns: u128,
    inode: u64,
}

/// `verified.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Stamp {
    generation: u64,
    files: Vec<Identity>,
}

/// The identity of `dir/file` now, if it can be read.
fn identity(dir: &Path, file: &str) -> Option<Identity> {
    let id = FileIdentity::of(&fs::metadata(dir.join(file)).ok()?)?;
    Some(Identity {
        file: file.to_owned(),
        len: id.len,
        modified_ns: id.modified_ns,
        inode: id.inode,
    })
}

/// What "unchanged since it was checked" means for a file, here and for every other record
/// of checked files (code search's lexical file, the model fingerprint): the same length,
/// modification time and inode. A rewrite changes at least one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: u128,
    /// Inode number (0 where the platform has none).
    pub inode: u64,
}

impl FileIdentity {
    /// The identity `meta` describes; `None` when the modification time cannot be read.
    pub fn of(meta: &fs::Metadata) -> Option<FileIdentity> {
        let modified_ns = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileIdentity {
            len: meta.len(),
            modified_ns,
            inode,
        })
    }
}

impl Stamp {
    /// The stamp of `generation` made of `files` in `dir` as they are now; `None` when one cannot
    /// be read.
    pub(crate) fn of(dir: &Path, generation: u64, files: &[&str]) -> Option<Stamp> {
        let files = files
            .iter()
            .map(|f| identity(dir, f))
            .collect::<Option<Vec<_>>>()?;
        Some(Stamp { generation, files })
    }

    /// Whether `dir`'s stamp says exactly these files of `generation` were verified as they are
    /// now.
    pub(crate) fn matches(dir: &Path, generation: u64, files: &[&str]) -> bool {
        let Ok(bytes) = fs::read(dir.join(VERIFIED)) else {
            return false;
        };
        let Ok(recorded) = serde_json::from_slice::<Stamp>(&bytes) else {
            return false;
        };
        Stamp::of(dir, generation, files).is_some_and(|now| now == recorded)
    }

    /// Writes the stamp into `dir`, best effort (a read-only index just verifies on every open).
    pub(crate) fn write(&self, dir: &Path) {
        let Ok(bytes) = serde_json::to_vec(self) else {
            return;
        };
        let tmp = dir.join(format!("{VERIFIED}.tmp"));
        if fs::write(&tmp, bytes).is_err() || fs::rename(&tmp, dir.join(VERIFIED)).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Deletes `dir`'s stamp, best effort.
    pub(crate) fn remove(dir: &Path) {
        let _ = fs::remove_file(dir.join(VERIFIED));
    }
}

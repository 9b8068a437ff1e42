//! An index held open across many questions (`bitseek mcp`, a watcher's readers) that follows
//! the updates `bitseek index` and `bitseek index --watch` commit.
//!
//! A writer commits a generation by renaming a new manifest over the old one and then deletes
//! the old generation's files. A reader that opened the old generation keeps its mapped files,
//! but anything it reads later by name (the lexical file is read on first use) may be gone, and
//! a reader opening while the writer deletes may find the manifest naming files that no longer
//! exist. [`LiveIndex`] notices a new commit by the manifest's identity (a `stat`, no read),
//! reopens, and retries an open or a search that failed while the manifest changed under it: a
//! question is always answered from one committed generation, the newest one it could open.

use crate::{index_dir, CodeError, CodeHit, CodeIndex, Filter, SearchMode};
use bitseek_store::MANIFEST;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Tries per open or search before the error is reported (each retry follows a new commit).
const TRIES: usize = 4;

/// Which manifest is committed: its file's identity, changed by every commit's rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(manifest: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(manifest).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            inode,
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

/// The code index of one repository, reopened when a newer generation is committed.
#[derive(Debug)]
pub struct LiveIndex {
    root: PathBuf,
    manifest: PathBuf,
    open: Option<(Option<Stamp>, CodeIndex)>,
}

impl LiveIndex {
    /// Follows the index of the repository at `root`; nothing is opened until first use, so a
    /// repository not indexed yet is fine until a question comes.
    pub fn new(root: &Path) -> LiveIndex {
        LiveIndex {
            root: root.to_owned(),
            manifest: index_dir(root).join(MANIFEST),
            open: None,
        }
    }

    /// The indexed repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn stamp(&self) -> Option<Stamp> {
        Stamp::of(&self.manifest)
    }

    /// The newest committed generation, opened (reopened only when it changed since last time).
    pub fn index(&mut self) -> Result<&CodeIndex, CodeError> {
        let now = self.stamp();
        if self.open.as_ref().map(|(s, _)| *s) != Some(now) {
            self.open = None;
            self.open = Some(self.open_fresh()?);
        }
        Ok(&self.open.as_ref().expect("opened above").1)
    }

    /// The generation opened last (the one the last search answered from), if any.
    pub fn opened(&self) -> Option<&CodeIndex> {
        self.open.as_ref().map(|(_, index)| index)
    }

    /// Opens the committed generation, again when a commit lands during the open (what was read
    /// may then mix two generations' files, or miss deleted ones).
    fn open_fresh(&self) -> Result<(Option<Stamp>, CodeIndex), CodeError> {
        let mut tries = 1;
        loop {
            let before = self.stamp();
            let result = CodeIndex::open(&self.root);
            let after = self.stamp();
            if before == after || tries >= TRIES {
                return result.map(|index| (after, index));
            }
            tries += 1;
        }
    }

    /// [`CodeIndex::search_with`] on the newest committed generation; a search that fails while
    /// a newer generation is committed is retried on it.
    pub fn search_with(
        &mut self,
        texts: &[&str],
        questions: &[Vec<f32>],
        k: usize,
        filter: &Filter,
        mode: SearchMode,
    ) -> Result<Vec<Vec<CodeHit>>, CodeError> {
        let mut tries = 0;
        loop {
            let result = self.index()?.search_with(texts, questions, k, filter, mode);
            match result {
                Ok(hits) => return Ok(hits),
                Err(e) => {
                    let moved = self.open.as_ref().map(|(s, _)| *s) != Some(self.stamp());
                    tries += 1;
                    if !moved || tries >= TRIES {
                        return Err(e);
                    }
                }
            }
        }
    }
}

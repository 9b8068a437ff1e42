//! An index held open across many questions (`bitseek search`, `bitseek mcp`, `bitseek serve
//! --code`, Python's `CodeIndex`, a watcher's readers) that follows the updates `bitseek index`
//! and `bitseek index --watch` commit.
//!
//! A writer commits a generation by renaming a new manifest over the old one and then deletes
//! the old generation's files. A reader that opened the old generation keeps its mapped files,
//! but anything it reads later by name (the lexical file is read on first use) may be gone, and
//! a reader opening while the writer deletes may find the manifest naming files that no longer
//! exist. [`LiveIndex`] notices a new commit by the manifest's identity (a `stat`, no read),
//! reopens, and retries an open or a search that failed on a generation a newer one has replaced:
//! a question is always answered from one committed generation, the newest one it could open.
//!
//! It is shared by reference between threads: a search takes the open generation (an [`Arc`])
//! under a read lock held only for that, so searches run side by side, each over the generation
//! that was current when it started, and only a reopen takes the write lock.

use crate::{index_dir, CodeError, CodeHit, CodeIndex, Filter, ModelInfo, SearchMode};
use bitseek_store::MANIFEST;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
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

/// The generation opened last and the manifest identity it was opened under.
#[derive(Debug)]
struct Opened {
    stamp: Option<Stamp>,
    index: Arc<CodeIndex>,
}

/// The code index of one repository, reopened when a newer generation is committed.
#[derive(Debug)]
pub struct LiveIndex {
    root: PathBuf,
    manifest: PathBuf,
    /// Checked against every generation opened, when given.
    model: Option<ModelInfo>,
    open: RwLock<Option<Opened>>,
}

impl LiveIndex {
    /// Follows the index of the repository at `root`; nothing is opened until first use, so a
    /// repository not indexed yet is fine until a question comes.
    pub fn new(root: &Path) -> LiveIndex {
        LiveIndex {
            root: root.to_owned(),
            manifest: index_dir(root).join(MANIFEST),
            model: None,
            open: RwLock::new(None),
        }
    }

    /// Checks every generation opened from now on against `model`
    /// ([`CodeIndex::check_model`]), so a re-index with another model is refused rather than
    /// searched with mismatched vectors. A generation already open is checked too.
    pub fn with_model(self, model: ModelInfo) -> Result<LiveIndex, CodeError> {
        if let Some(open) = self.read().as_ref() {
            open.index.check_model(&model)?;
        }
        Ok(LiveIndex {
            model: Some(model),
            ..self
        })
    }

    /// The indexed repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn stamp(&self) -> Option<Stamp> {
        Stamp::of(&self.manifest)
    }

    // A panic elsewhere cannot leave the slot half-written: it only ever holds a whole `Opened`.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Opened>> {
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Opened>> {
        self.open.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest committed generation, opened (reopened only when it changed since last time).
    pub fn index(&self) -> Result<Arc<CodeIndex>, CodeError> {
        let now = self.stamp();
        if let Some(open) = self.read().as_ref().filter(|o| o.stamp == now) {
            return Ok(open.index.clone());
        }
        let mut slot = self.write();
        // Another thread may have reopened it while this one waited for the lock.
        let now = self.stamp();
        if let Some(open) = slot.as_ref().filter(|o| o.stamp == now) {
            return Ok(open.index.clone());
        }
        *slot = None;
        let open = self.open_fresh()?;
        let index = open.index.clone();
        *slot = Some(open);
        Ok(index)
    }

    /// The generation opened last (the one the last search answered from), if any.
    pub fn opened(&self) -> Option<Arc<CodeIndex>> {
        self.read().as_ref().map(|o| o.index.clone())
    }

    /// Opens the committed generation, again when a commit lands during the open (what was read
    /// may then mix two generations' files, or miss deleted ones).
    fn open_fresh(&self) -> Result<Opened, CodeError> {
        let mut tries = 1;
        loop {
            let before = self.stamp();
            let result = CodeIndex::open(&self.root);
            let after = self.stamp();
            if before == after || tries >= TRIES {
                let index = result?;
                if let Some(model) = &self.model {
                    index.check_model(model)?;
                }
                return Ok(Opened {
                    stamp: after,
                    index: Arc::new(index),
                });
            }
            tries += 1;
        }
    }

    /// Opens the committed generation again after `failed` failed, unless another thread has
    /// already replaced it; `None` when the committed generation is `failed`'s own (the failure
    /// was not a writer's doing).
    fn replace(&self, failed: &Arc<CodeIndex>) -> Result<Option<Arc<CodeIndex>>, CodeError> {
        let mut slot = self.write();
        let held = slot.as_ref().map(|o| o.index.clone());
        let index = match held {
            Some(held) if !Arc::ptr_eq(&held, failed) => held,
            _ => {
                *slot = None;
                let open = self.open_fresh()?;
                let index = open.index.clone();
                *slot = Some(open);
                index
            }
        };
        let same = index.collection().generation() == failed.collection().generation();
        Ok((!same).then_some(index))
    }

    /// [`CodeIndex::search_with`] on the newest committed generation; a search that fails on a
    /// generation that a newer one has replaced (its files deleted under it) is retried on the
    /// newer one.
    pub fn search_with(
        &self,
        texts: &[&str],
        questions: &[Vec<f32>],
        k: usize,
        filter: &Filter,
        mode: SearchMode,
    ) -> Result<Vec<Vec<CodeHit>>, CodeError> {
        self.search_in(texts, questions, k, filter, mode)
            .map(|(hits, _)| hits)
    }

    /// [`search_with`](Self::search_with), and the generation that answered (its units, its
    /// generation number, the model it was built with).
    pub fn search_in(
        &self,
        texts: &[&str],
        questions: &[Vec<f32>],
        k: usize,
        filter: &Filter,
        mode: SearchMode,
    ) -> Result<(Vec<Vec<CodeHit>>, Arc<CodeIndex>), CodeError> {
        let mut index = self.index()?;
        let mut tries = 1;
        loop {
            match index.search_with(texts, questions, k, filter, mode) {
                Ok(hits) => return Ok((hits, index)),
                Err(e) if tries >= TRIES => return Err(e),
                Err(e) => match self.replace(&index)? {
                    Some(newer) => index = newer,
                    None => return Err(e),
                },
            }
            tries += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HashedWords;
    use crate::{index_repo, IndexOptions};
    use bitseek_embed::Embedder;

    const DIM: usize = 8;

    /// The crate's test embedder (bag of hashed words).
    const WORDS: HashedWords = HashedWords::new(DIM);

    fn model() -> ModelInfo {
        ModelInfo {
            name: "words".into(),
            dim: DIM,
            fingerprint: "0".repeat(32),
            precision: "f32".into(),
            encoder: None,
            adapter: None,
        }
    }

    fn index(root: &Path, text: &str) {
        std::fs::write(root.join("a.py"), text).unwrap();
        index_repo(root, &WORDS, &model(), &IndexOptions::default(), &|_, _| {}).unwrap();
    }

    /// A search that took the open index just before a writer replaced it, and then found that
    /// generation's files gone, is answered from the new generation.
    #[test]
    fn a_generation_replaced_mid_search_is_searched_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        index(root, "def alpha_one():\n    return 1\n");
        let live = LiveIndex::new(root).with_model(model()).unwrap();
        let old = live.index().unwrap();
        assert_eq!(old.collection().generation(), 1);
        index(root, "def beta_two():\n    return 2\n");
        // The race: the manifest was stamped after the rename, the index opened before it.
        live.write().as_mut().unwrap().stamp = live.stamp();
        assert!(Arc::ptr_eq(&live.index().unwrap(), &old));
        let q = WORDS.embed(&["beta_two"]).unwrap();
        // Without a second try the old generation's lexical file is gone.
        let direct = old.search_with(&["beta_two"], &q, 1, &Filter::default(), SearchMode::Hybrid);
        assert!(direct.is_err(), "the old generation still searchable");
        let (hits, by) = live
            .search_in(&["beta_two"], &q, 1, &Filter::default(), SearchMode::Hybrid)
            .unwrap();
        assert_eq!(hits[0][0].name, "beta_two");
        assert_eq!(by.collection().generation(), 2);
        assert_eq!(live.opened().unwrap().collection().generation(), 2);
    }

    /// Threads share one `LiveIndex` by reference and all see a commit made while they search.
    #[test]
    fn threads_search_one_live_index_side_by_side_across_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        index(root, "def alpha_one():\n    return 1\n");
        let live = LiveIndex::new(root);
        let q = WORDS.embed(&["beta_two"]).unwrap();
        let search = || {
            live.search_with(&["beta_two"], &q, 1, &Filter::default(), SearchMode::Hybrid)
                .unwrap()[0][0]
                .name
                .clone()
        };
        std::thread::scope(|s| {
            let before: Vec<_> = (0..4).map(|_| s.spawn(search)).collect();
            for t in before {
                assert_eq!(t.join().unwrap(), "alpha_one");
            }
            index(root, "def beta_two():\n    return 2\n");
            let after: Vec<_> = (0..4).map(|_| s.spawn(search)).collect();
            for t in after {
                assert_eq!(t.join().unwrap(), "beta_two");
            }
        });
    }

    /// A generation built with another model is refused once a model is expected.
    #[test]
    fn a_generation_of_another_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        index(root, "def alpha_one():\n    return 1\n");
        let other = ModelInfo {
            fingerprint: "1".repeat(32),
            ..model()
        };
        let live = LiveIndex::new(root).with_model(other).unwrap();
        let err = live.index().unwrap_err();
        assert!(matches!(err, CodeError::ModelMismatch { .. }), "{err}");
    }
}

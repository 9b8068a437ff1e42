//! The [`Db`]: a directory of named live collections, locked against a second process.

use super::collection::LiveCollection;
use super::config::{CollectionConfig, CollectionInfo, DbOptions, LIVE_VERSION};
use super::lock;
use super::manifest::{LiveManifest, LogEntry};
use crate::error::{io_err, StoreError};
use crate::files::{sync_dir, write_synced};
use crate::manifest::{FORMAT, MANIFEST};
use crate::wal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A directory of named collections (`<root>/<name>/`), locked against a second process.
///
/// Thread-safe: every method takes `&self`.
pub struct Db {
    root: PathBuf,
    options: DbOptions,
    collections: RwLock<BTreeMap<String, Arc<LiveCollection>>>,
    /// Serialises create and drop.
    admin: Mutex<()>,
    /// Held (locked) while the database is open.
    _lock: File,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("root", &self.root).finish()
    }
}

/// Collection names: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::Input(format!(
            "collection name {name:?} is invalid; use 1 to 64 of A-Z, a-z, 0-9, _ and -"
        )))
    }
}

impl Db {
    /// Opens (creating it if missing) the database in `root` with default options.
    pub fn open(root: &Path) -> Result<Db, StoreError> {
        Db::open_with(root, DbOptions::default())
    }

    /// Opens the database in `root`: takes its lock file and opens every collection in it,
    /// replaying their logs. Directories with names that are not collection names are ignored;
    /// a directory without a manifest is an unfinished create and is ignored too.
    pub fn open_with(root: &Path, options: DbOptions) -> Result<Db, StoreError> {
        if options.flush_rows == 0 {
            return Err(StoreError::Input("flush_rows must be at least 1".into()));
        }
        fs::create_dir_all(root).map_err(io_err(root))?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Input(format!(
                "{} is in use by another bitseek process; stop it or choose another data directory",
                root.display()
            )))
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let mut collections = BTreeMap::new();
        let mut names: Vec<String> = fs::read_dir(root)
            .map_err(io_err(root))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        for name in names {
            let dir = root.join(&name);
            if !dir.join(MANIFEST).exists() {
                continue;
            }
            let c = LiveCollection::open_named(&dir, &name, options)?;
            collections.insert(name, Arc::new(c));
        }
        Ok(Db {
            root: root.to_owned(),
            options,
            collections: RwLock::new(collections),
            admin: Mutex::new(()),
            _lock: lock,
        })
    }

    /// The database directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates an empty collection; `AlreadyExists` if the name is taken.
    pub fn create(
        &self,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Arc<LiveCollection>, StoreError> {
        check_name(name)?;
        config.validate()?;
        let _admin = lock(&self.admin)?;
        if self.read_map()?.contains_key(name) {
            return Err(StoreError::AlreadyExists { name: name.into() });
        }
        let dir = self.root.join(name);
        if dir.join(MANIFEST).exists() {
            return Err(StoreError::AlreadyExists { name: name.into() });
        }
        if dir.exists() {
            // An unfinished create (no manifest): nothing in it was ever acknowledged.
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let log = "wal-1.log".to_string();
        write_synced(&dir.join(&log), wal::MAGIC)?;
        let manifest = LiveManifest {
            format: FORMAT.into(),
            version: LIVE_VERSION,
            generation: 1,
            dim: config.dim,
            rows: 0,
            metric: config.metric,
            quantizer: config.quantizer.clone(),
            keep: config.keep,
            durability: config.durability,
            index: config.index,
            segments: Vec::new(),
            tombstones: None,
            log: Some(LogEntry {
                file: log,
                flushed_lsn: 0,
            }),
            frozen_log: None,
            extra: Value::Object(Default::default()),
            checksum: String::new(),
        };
        manifest.write(&dir)?;
        sync_dir(&self.root)?;
        let c = Arc::new(LiveCollection::open_named(&dir, name, self.options)?);
        self.write_map()?.insert(name.into(), c.clone());
        Ok(c)
    }

    /// The collection called `name`; `UnknownCollection` if there is none.
    pub fn get(&self, name: &str) -> Result<Arc<LiveCollection>, StoreError> {
        self.read_map()?
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownCollection { name: name.into() })
    }

    /// Every collection's info, by name.
    pub fn list(&self) -> Vec<CollectionInfo> {
        match self.read_map() {
            Ok(m) => m.values().map(|c| c.info()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Deletes a collection and its files. Searches already running on it finish on their
    /// snapshot; later writes through a handle still held fail with `UnknownCollection`.
    pub fn drop_collection(&self, name: &str) -> Result<(), StoreError> {
        let _admin = lock(&self.admin)?;
        let c = self
            .write_map()?
            .remove(name)
            .ok_or_else(|| StoreError::UnknownCollection { name: name.into() })?;
        c.mark_dropped()?;
        let dir = self.root.join(name);
        // Remove the manifest first: a crash half-way leaves an unfinished create, not a
        // half-deleted collection.
        let m = dir.join(MANIFEST);
        fs::remove_file(&m).map_err(io_err(&m))?;
        sync_dir(&dir)?;
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        sync_dir(&self.root)
    }

    fn read_map(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<LiveCollection>>>, StoreError>
    {
        self.collections
            .read()
            .map_err(|_| StoreError::Internal("collection map lock poisoned".into()))
    }

    fn write_map(
        &self,
    ) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<LiveCollection>>>, StoreError>
    {
        self.collections
            .write()
            .map_err(|_| StoreError::Internal("collection map lock poisoned".into()))
    }
}

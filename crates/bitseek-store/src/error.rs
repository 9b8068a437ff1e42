//! The store's one error type, and what each error tells the person who has to fix it.

use crate::manifest::MANIFEST;
use bitseek_index::format::FormatError;
use bitseek_index::IndexError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What to do about a collection file that cannot be used, in the user's terms. Each error about
/// a file names the file and ends with its fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    /// The files are damaged or incomplete; a code index is rebuilt from its sources.
    Rebuild,
    /// The files of a live collection are damaged; its data lives only in them.
    Restore,
    /// The files were written by a newer bitseek.
    Upgrade,
    /// A live collection was opened as a code index.
    Serve,
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fix::Rebuild => {
                "the collection is damaged or incomplete: rebuild it (for a code index, re-run \
                 `bitseek index`)"
            }
            Fix::Restore => {
                "the collection is damaged: restore it from a snapshot (POST \
                 /collections/{name}/snapshot makes one), or drop it and upsert its points again"
            }
            Fix::Upgrade => "upgrade bitseek to read it",
            Fix::Serve => "serve it with `bitseek serve` and use the HTTP API",
        })
    }
}

/// Everything that can go wrong creating, opening or searching a collection. Messages name the file
/// and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory has no manifest.
    #[error("no collection at {}: {} is missing", dir.display(), dir.join(MANIFEST).display())]
    NotFound {
        /// The directory that was to hold the collection.
        dir: PathBuf,
    },
    /// The manifest cannot be read or does not describe a collection this version understands.
    #[error("{}: {reason}; {fix}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        fix: Fix,
    },
    /// The segment file (or a live collection's tombstone file) is missing or fails its checks.
    #[error("{}: {reason}; {fix}", path.display())]
    Segment {
        /// The segment or tombstone file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        fix: Fix,
    },
    /// The payload file is missing, damaged, or does not have one value per row.
    #[error("{}: {reason}; {fix}", path.display())]
    Payloads {
        /// The payload file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        fix: Fix,
    },
    /// Writing, renaming or syncing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The caller passed something a collection cannot hold.
    #[error("invalid input: {0}")]
    Input(String),
    /// Building the segment or searching it failed (bad vectors, bad queries, bad parameters).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// No collection of that name in the database.
    #[error("no collection named {name:?}; create it first (PUT /collections/{name})")]
    UnknownCollection {
        /// The name asked for.
        name: String,
    },
    /// A collection of that name exists already.
    #[error("collection {name:?} already exists; drop it first or choose another name")]
    AlreadyExists {
        /// The name asked for.
        name: String,
    },
    /// The write-ahead log cannot be read.
    #[error("{}: {reason}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
    },
    /// The operation is impossible for this collection; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// The collection refuses writes until it has rewritten its acknowledged state into new
    /// files: a log `fsync` or a manifest swap failed, so what is on disk is not known.
    #[error(
        "collection {name:?} is read-only: {reason}; reads go on, and the next write retries \
         rewriting its acknowledged points into new files{}",
        if *no_space { " (free disk space first)" } else { "" }
    )]
    ReadOnly {
        /// The collection's name.
        name: String,
        /// What failed.
        reason: String,
        /// Whether the disk is full (HTTP 507 rather than 503).
        no_space: bool,
    },
    /// The store cannot go on safely (a panicked writer).
    #[error("internal store error: {0}")]
    Internal(String),
}

/// What an HTTP layer maps errors to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such collection (or no collection in a directory).
    NotFound,
    /// The name is taken.
    Conflict,
    /// The caller's request is invalid; the message says how.
    BadInput,
    /// The disk is full: the write was refused and nothing of it is kept; retry once there is
    /// space.
    NoSpace,
    /// The write was refused because the device failed or the collection is read-only after a
    /// failed `fsync`; retry later.
    Unavailable,
    /// The store failed (damaged files, a panicked writer).
    Internal,
}

impl StoreError {
    /// The class of the error: the caller's fault (`BadInput`), a name that is or is not there
    /// (`NotFound`, `Conflict`), the disk's or device's (`NoSpace`, `Unavailable`) or the
    /// store's (`Internal`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::UnknownCollection { .. } | StoreError::NotFound { .. } => {
                ErrorKind::NotFound
            }
            StoreError::AlreadyExists { .. } => ErrorKind::Conflict,
            StoreError::Io { source, .. } if is_no_space(source) => ErrorKind::NoSpace,
            StoreError::Io { .. } => ErrorKind::Unavailable,
            StoreError::Index(IndexError::Format(FormatError::Io { source, .. })) => {
                if is_no_space(source) {
                    ErrorKind::NoSpace
                } else {
                    ErrorKind::Unavailable
                }
            }
            StoreError::ReadOnly { no_space: true, .. } => ErrorKind::NoSpace,
            StoreError::ReadOnly { .. } => ErrorKind::Unavailable,
            StoreError::Input(_) | StoreError::Refused(_) => ErrorKind::BadInput,
            StoreError::Index(
                IndexError::Input(_)
                | IndexError::DimensionMismatch { .. }
                | IndexError::NonFiniteQuery { .. }
                | IndexError::ZeroQuery { .. }
                | IndexError::BadParam(_),
            ) => ErrorKind::BadInput,
            _ => ErrorKind::Internal,
        }
    }
}

/// Whether `e` says the disk (or a quota) is full.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// Wraps an I/O error with the path it happened on.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

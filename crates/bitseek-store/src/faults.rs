//! The store's file operations that a full disk or a failing device can make fail — create, write,
//! fsync, rename — each behind one function, so tests can make the Nth of them fail.
//!
//! Without the `faults` feature each function is the plain `std` call and nothing else. With it,
//! [`inject`] arms a [`Fault`] for every file under a directory: the Nth call of one kind there
//! fails (and, when `sticky`, every later one too, until [`clear`]: a disk that stays full). An
//! injected write failure writes the first half of the bytes before failing, as a short write
//! on a full disk does. Rules are per directory, so tests running in parallel on their own
//! temporary directories do not disturb each other.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A kind of file operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// Creating (or opening for writing) a file.
    Create,
    /// Writing bytes.
    Write,
    /// `fsync` of a file or directory.
    Fsync,
    /// Renaming a file into place.
    Rename,
}

/// The error an injected fault returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// `ENOSPC`: the disk is full.
    NoSpace,
    /// `EIO`: the device failed.
    Io,
}

impl FaultError {
    #[cfg_attr(not(feature = "faults"), allow(dead_code))]
    fn to_io(self) -> io::Error {
        match self {
            FaultError::NoSpace => io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected fault)",
            ),
            FaultError::Io => io::Error::other("input/output error (injected fault)"),
        }
    }
}

/// Which call fails, and how.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// The kind of operation.
    pub op: FaultOp,
    /// The call of that kind (1-based, counted from [`inject`]) that fails.
    pub nth: u64,
    /// Whether every later call of that kind fails too, until [`clear`].
    pub sticky: bool,
    /// The error returned.
    pub error: FaultError,
}

#[cfg(feature = "faults")]
mod plan {
    use super::{Fault, FaultOp};
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    pub(super) struct Rule {
        pub(super) dir: PathBuf,
        pub(super) fault: Option<Fault>,
        pub(super) calls: HashMap<FaultOp, u64>,
        pub(super) fired: u64,
    }

    pub(super) static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());

    pub(super) fn rules() -> std::sync::MutexGuard<'static, Vec<Rule>> {
        RULES.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call and says whether it fails.
    pub(super) fn hit(op: FaultOp, path: &Path) -> io::Result<()> {
        let mut rules = rules();
        let Some(rule) = rules.iter_mut().find(|r| path.starts_with(&r.dir)) else {
            return Ok(());
        };
        let n = rule.calls.entry(op).or_default();
        *n += 1;
        match rule.fault {
            Some(f) if f.op == op && (*n == f.nth || (f.sticky && *n > f.nth)) => {
                rule.fired += 1;
                Err(f.error.to_io())
            }
            _ => Ok(()),
        }
    }
}

/// Counts calls under `dir` from now on and fails the one `fault` names (replacing any earlier
/// rule for `dir`). `fault: None` only counts.
#[cfg(feature = "faults")]
pub fn inject(dir: &Path, fault: Option<Fault>) {
    let mut rules = plan::rules();
    rules.retain(|r| r.dir != dir);
    rules.push(plan::Rule {
        dir: dir.to_owned(),
        fault,
        calls: Default::default(),
        fired: 0,
    });
}

/// Removes the rule for `dir`: its file operations succeed again (the disk has space again).
#[cfg(feature = "faults")]
pub fn clear(dir: &Path) {
    plan::rules().retain(|r| r.dir != dir);
}

/// How many calls of kind `op` were made under `dir` since [`inject`], and how many failed.
#[cfg(feature = "faults")]
pub fn calls(dir: &Path, op: FaultOp) -> (u64, u64) {
    plan::rules()
        .iter()
        .find(|r| r.dir == dir)
        .map_or((0, 0), |r| {
            (r.calls.get(&op).copied().unwrap_or(0), r.fired)
        })
}

/// Fails when a fault is armed for this call; otherwise nothing (and nothing at all without the
/// `faults` feature).
#[inline]
pub(crate) fn check(op: FaultOp, path: &Path) -> io::Result<()> {
    #[cfg(feature = "faults")]
    return plan::hit(op, path);
    #[cfg(not(feature = "faults"))]
    {
        let _ = (op, path);
        Ok(())
    }
}

/// Opens `path` with `options` (which create or write it).
pub(crate) fn open(options: &OpenOptions, path: &Path) -> io::Result<File> {
    check(FaultOp::Create, path)?;
    options.open(path)
}

/// Writes all of `bytes` to `file` (at `path`).
pub(crate) fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Err(e) = check(FaultOp::Write, path) {
        // A full disk takes part of a write before refusing the rest.
        let _ = file.write_all(&bytes[..bytes.len() / 2]);
        return Err(e);
    }
    file.write_all(bytes)
}

/// `fsync` of `file` (at `path`): data and metadata, or data only (`fdatasync`).
pub(crate) fn sync(file: &File, path: &Path, data_only: bool) -> io::Result<()> {
    check(FaultOp::Fsync, path)?;
    if data_only {
        file.sync_data()
    } else {
        file.sync_all()
    }
}

/// Renames `from` to `to`.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    check(FaultOp::Rename, to)?;
    std::fs::rename(from, to)
}

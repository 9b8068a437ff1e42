//! The library's errors as Python exceptions, with the message the CLI prints.
//!
//! The message is the error and its sources joined by `": "`, as the CLI prints them (anyhow's
//! `{:#}`). The class says who has to act: `ValueError` for the caller's input,
//! `FileNotFoundError`/`PermissionError`/`OSError` for the operating system, `CorruptIndex` (an
//! `OSError`: the bytes on disk are wrong, like a failed read) for files that fail their checks.

use bitseek_index::encoder::EncoderError;
use bitseek_index::format::FormatError;
use bitseek_index::input::InputError;
use bitseek_index::IndexError;
use bitseek_store::{ErrorKind, StoreError};
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;
use std::error::Error;
use std::io;

pyo3::create_exception!(
    bitseek,
    CorruptIndex,
    PyOSError,
    "An index or collection file failed its checks (bad magic, checksum, truncation, version): \
     rebuild it or restore it. A subclass of OSError, so `except OSError` covers every reason a \
     file cannot be used."
);

/// `e` and its sources joined by `": "`, as the CLI prints an error.
pub fn message(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

fn os_error(kind: io::ErrorKind, msg: String) -> PyErr {
    match kind {
        io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
        io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
        _ => PyOSError::new_err(msg),
    }
}

fn format_error(e: &FormatError, msg: String) -> PyErr {
    match e {
        FormatError::Io { source, .. } => os_error(source.kind(), msg),
        _ => CorruptIndex::new_err(msg),
    }
}

/// An index error as the exception its cause calls for.
pub fn index_error(e: IndexError) -> PyErr {
    let msg = message(&e);
    classify(&e, msg)
}

/// [`index_error`] with the CLI's context line in front (`cannot write index PATH: ...`).
pub fn index_error_in(context: &str, e: IndexError) -> PyErr {
    let msg = format!("{context}: {}", message(&e));
    classify(&e, msg)
}

fn classify(e: &IndexError, msg: String) -> PyErr {
    match e {
        IndexError::Format(f) => format_error(f, msg),
        IndexError::Corrupt { .. } => CorruptIndex::new_err(msg),
        IndexError::Input(InputError::Io { source, .. }) => os_error(source.kind(), msg),
        IndexError::Encoder(EncoderError::Container { source, .. }) => format_error(source, msg),
        IndexError::Encoder(EncoderError::Corrupt { .. }) => CorruptIndex::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// An input error (the vectors or queries handed over) as a `ValueError`.
pub fn input_error(e: InputError) -> PyErr {
    index_error(IndexError::Input(e))
}

/// A store error as the exception its [`ErrorKind`] calls for; a missing collection is a
/// `KeyError` (it is looked up by name, like a dict).
pub fn store_error(e: StoreError) -> PyErr {
    let msg = message(&e);
    match e {
        StoreError::Index(inner) => index_error(inner),
        StoreError::Io { source, .. } => os_error(source.kind(), msg),
        StoreError::UnknownCollection { .. } => PyKeyError::new_err(msg),
        StoreError::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        StoreError::Manifest { .. }
        | StoreError::Segment { .. }
        | StoreError::Payloads { .. }
        | StoreError::Log { .. } => CorruptIndex::new_err(msg),
        e => match e.kind() {
            ErrorKind::BadInput | ErrorKind::Conflict => PyValueError::new_err(msg),
            ErrorKind::NotFound => PyKeyError::new_err(msg),
            // A full disk, or a collection read-only after a failed fsync: the write was refused.
            ErrorKind::NoSpace | ErrorKind::Unavailable => PyOSError::new_err(msg),
            ErrorKind::Internal => PyRuntimeError::new_err(msg),
        },
    }
}

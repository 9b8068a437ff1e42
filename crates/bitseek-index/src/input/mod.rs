//! Vector input readers: `.npy` (float32/float16), `.fvecs` and JSON lines, from a file, a reader
//! or bytes (an `.npz` member is read in place, never unpacked to disk).
//!
//! Everything a user or a disk can get wrong comes back as an [`InputError`] whose message names the
//! file, the row or line, what was expected, what was found and what to do about it. [`validate`]
//! runs after reading so that `build` refuses bad input before it writes anything. One file per
//! format (the `.npy` one also writes), plus the errors and the whole-file checks.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

mod error;
mod fvecs;
mod jsonl;
mod npy;
mod validate;

pub use error::InputError;
pub use npy::{write_npy_f32, write_npy_f32_to};
pub use validate::{validate, validate_rows, Checks};

/// Vectors read from a file, one row per vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    /// Values per vector.
    pub dim: usize,
    /// Row-major, `rows * dim` values.
    pub data: Vec<f32>,
    /// Caller-chosen ids; `None` means the row numbers are the ids.
    pub ids: Option<Vec<u64>>,
}

impl Vectors {
    /// Number of vectors (0 when `dim` is 0, rather than dividing by zero).
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i`. Panics if `i >= self.rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The ids to store: the given ones, or `0..rows` when the file had none.
    pub fn ids_or_rows(&self) -> Vec<u64> {
        match &self.ids {
            Some(ids) => ids.clone(),
            None => (0..self.rows() as u64).collect(),
        }
    }
}

/// The supported input formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy`, a 2-D C-order array of `<f4` or `<f2`.
    Npy,
    /// `.fvecs`: per row a little-endian `i32` dimension, then that many `f32`.
    Fvecs,
    /// `.jsonl` / `.ndjson`: one `{"id": 7, "vector": [..]}` object per line.
    JsonLines,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Npy => ".npy",
            Format::Fvecs => ".fvecs",
            Format::JsonLines => "JSON lines",
        })
    }
}

/// Where in a file an error is: binary formats count rows from 0 (row numbers double as ids), text
/// formats count lines from 1 (as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A 0-based row.
    Row(usize),
    /// A 1-based line.
    Line(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Row(r) => write!(f, "row {r}"),
            Place::Line(l) => write!(f, "line {l}"),
        }
    }
}

/// Picks the reader from the extension (case-insensitive), since none of the formats is reliably
/// recognisable from its bytes (fvecs and JSON have no magic).
pub fn detect_format(path: &Path) -> Result<Format, InputError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("fvecs") => Ok(Format::Fvecs),
        Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
        Some(other) => Err(InputError::UnknownFormat {
            path: path.to_owned(),
            found: format!("extension .{other}"),
        }),
        None => Err(InputError::UnknownFormat {
            path: path.to_owned(),
            found: "no extension".to_owned(),
        }),
    }
}

/// Reads a vector file in the format its extension names. Run [`validate`] on the result before
/// using it.
pub fn read_vectors(path: &Path) -> Result<Vectors, InputError> {
    read_vectors_as(path, detect_format(path)?)
}

/// Reads a vector file in the given format, whatever its extension (for a `--format` override).
pub fn read_vectors_as(path: &Path, format: Format) -> Result<Vectors, InputError> {
    let (file, len) = open(path)?;
    read_vectors_from(file, len, format, path)
}

/// Reads vectors in `format` from any reader: an archive member, a socket, bytes in memory.
/// `len` is the exact byte count when known (it lets a lying header be refused before anything is
/// allocated); `name` only labels errors, as a path would.
pub fn read_vectors_from(
    reader: impl Read,
    len: Option<u64>,
    format: Format,
    name: &Path,
) -> Result<Vectors, InputError> {
    match format {
        Format::Npy => npy::read_npy(reader, len, name),
        Format::Fvecs => fvecs::read_fvecs(reader, len, name),
        Format::JsonLines => jsonl::read_jsonl(reader, name),
    }
}

/// Reads vectors in `format` from bytes in memory; `name` only labels errors.
pub fn read_vectors_from_bytes(
    bytes: &[u8],
    format: Format,
    name: &Path,
) -> Result<Vectors, InputError> {
    read_vectors_from(bytes, Some(bytes.len() as u64), format, name)
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn open(path: &Path) -> Result<(File, Option<u64>), InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    // Only a regular file's length is trustworthy (pipes and devices report 0).
    let len = meta.is_file().then_some(meta.len());
    Ok((file, len))
}

/// Reads until `buf` is full or the input ends, returning how much was read, so that a short file
/// can be reported with the byte count found (`read_exact` only says "early EOF").
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A zeroed buffer of `len` elements, or an error instead of an abort when memory runs out. Uses
/// `calloc`, so the pages are only touched once, by the read that fills them (zeroing 1.5 GB by
/// hand first doubles the load time).
fn zeroed<T: bytemuck::Zeroable>(path: &Path, len: usize) -> Result<Vec<T>, InputError> {
    bytemuck::allocation::try_zeroed_vec(len).map_err(|()| InputError::OutOfMemory {
        path: path.to_owned(),
        bytes: (len as u64).saturating_mul(size_of::<T>() as u64),
    })
}

/// Little-endian on disk to native, in place; compiles to nothing on little-endian machines.
fn f32_from_le_in_place(data: &mut [f32]) {
    if cfg!(target_endian = "big") {
        for x in data {
            *x = f32::from_bits(u32::from_le(x.to_bits()));
        }
    }
}

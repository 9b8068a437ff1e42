//! [`InputError`]: every way a vector file can be wrong, each message ending in what to do.

use std::io;
use std::path::PathBuf;

use super::{Format, Place};

/// Why a vector file could not be read or was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file (or archive member).
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: io::Error,
    },
    /// The extension names no format this reads.
    #[error(
        "{}: unsupported input format ({found}); expected .npy, .fvecs, .jsonl or .ndjson; rename \
         the file or convert it",
        .path.display()
    )]
    UnknownFormat {
        /// The file (or archive member).
        path: PathBuf,
        /// The extension found, in words.
        found: String,
    },
    /// Zero bytes, or no vector at all in a text file.
    #[error(
        "{}: the file is empty; expected {format} data with at least one vector; check that it was \
         written completely",
        .path.display()
    )]
    Empty {
        /// The file (or archive member).
        path: PathBuf,
        /// The format it was read as.
        format: Format,
    },
    /// A well-formed file with no vectors in it.
    #[error(
        "{}: contains no vectors ({found}); expected at least one row; check what was saved",
        .path.display()
    )]
    NoRows {
        /// The file (or archive member).
        path: PathBuf,
        /// What the file held instead, in words.
        found: String,
    },
    /// Not a `.npy` file: the magic string is missing.
    #[error(
        "{}: not a .npy file: expected it to start with \\x93NUMPY, found {found}; save it with \
         np.save",
        .path.display()
    )]
    NpyMagic {
        /// The file (or archive member).
        path: PathBuf,
        /// The first bytes, escaped.
        found: String,
    },
    /// The `.npy` header is malformed or cut short.
    #[error("{}: bad .npy header: {reason}; save it again with np.save", .path.display())]
    NpyHeader {
        /// The file (or archive member).
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// A `.npy` dtype other than little-endian float32 or float16.
    #[error(
        "{}: unsupported dtype {found}; expected '<f4' (float32) or '<f2' (float16); convert with \
         x.astype(np.float32) and save again",
        .path.display()
    )]
    NpyDtype {
        /// The file (or archive member).
        path: PathBuf,
        /// The dtype, named for people.
        found: String,
    },
    /// A column-major `.npy` array.
    #[error(
        "{}: the array is in Fortran (column-major) order; expected C order; write it with \
         np.save(path, np.ascontiguousarray(x))",
        .path.display()
    )]
    NpyFortranOrder {
        /// The file (or archive member).
        path: PathBuf,
    },
    /// A `.npy` shape that is not (rows, dim) with dim > 0, or too large to load.
    #[error(
        "{}: shape {found}; expected a 2-D array (rows, dim); {hint}",
        .path.display()
    )]
    NpyShape {
        /// The file (or archive member).
        path: PathBuf,
        /// The shape, as Python writes it.
        found: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The file ends inside a row.
    #[error(
        "{}: truncated at row {row}: expected {expected} bytes of {what}, found {found}; the file \
         was cut short (an interrupted write or copy?); write it again",
        .path.display()
    )]
    Truncated {
        /// The file (or archive member).
        path: PathBuf,
        /// The 0-based row.
        row: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// More `.npy` data than the header promises.
    #[error(
        "{}: {found} bytes of array data where the header says {expected}; the header does not \
         match the data; save it again with np.save",
        .path.display()
    )]
    TrailingData {
        /// The file (or archive member).
        path: PathBuf,
        /// Data bytes the header promises.
        expected: u64,
        /// Data bytes found.
        found: u64,
    },
    /// An `.fvecs` row with a dimension field of 0 or less.
    #[error(
        "{}: row {row} declares dimension {found}; expected a positive i32; is this really an \
         .fvecs file (each row: little-endian i32 dimension, then that many f32)?",
        .path.display()
    )]
    BadDimension {
        /// The file (or archive member).
        path: PathBuf,
        /// The 0-based row.
        row: usize,
        /// The dimension field.
        found: i64,
    },
    /// A vector whose dimension differs from the first one's.
    #[error(
        "{}: {at} has dimension {found} but {first} has dimension {expected}; every vector needs \
         the same dimension; fix or drop {at}",
        .path.display()
    )]
    Ragged {
        /// The file (or archive member).
        path: PathBuf,
        /// Where the odd vector is.
        at: Place,
        /// Its dimension.
        found: usize,
        /// Where the first vector is.
        first: Place,
        /// The first vector's dimension.
        expected: usize,
    },
    /// A JSON line that is not valid JSON.
    #[error(
        "{}: line {line}, column {column}: invalid JSON ({reason}); expected one object per line \
         like {{\"id\": 7, \"vector\": [0.1, 0.2]}}",
        .path.display()
    )]
    Json {
        /// The file (or archive member).
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based byte column in the line.
        column: usize,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// Valid JSON that is not a `{"id", "vector"}` record.
    #[error(
        "{}: line {line}: {reason}; expected an object like {{\"id\": 7, \"vector\": [0.1, 0.2]}}",
        .path.display()
    )]
    BadRecord {
        /// The file (or archive member).
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// A JSON record without a `"vector"` field.
    #[error(
        "{}: line {line} has no \"vector\" field; expected an object like {{\"id\": 7, \
         \"vector\": [0.1, 0.2]}}",
        .path.display()
    )]
    MissingVector {
        /// The file (or archive member).
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A `"vector"` entry that is not a number.
    #[error(
        "{}: line {line}: \"vector\" entry {index} is {found}; expected a number; fix or drop line \
         {line}",
        .path.display()
    )]
    NotANumber {
        /// The file (or archive member).
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 0-based entry in `"vector"`.
        index: usize,
        /// The entry, cut short.
        found: String,
    },
    /// Some JSON lines have an id and some do not.
    #[error(
        "{}: line {line} {} but line {first_line} {}; give every line an id, or none (then row \
         numbers are the ids)",
        .path.display(),
        if *.line_has_id { "has an \"id\"" } else { "has no \"id\"" },
        if *.line_has_id { "has none" } else { "has one" }
    )]
    MixedIds {
        /// The file (or archive member).
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The first line, which set the rule.
        first_line: usize,
        /// Whether `line` has an id.
        line_has_id: bool,
    },
    /// Vectors of another dimension than the index's.
    #[error(
        "{}: vectors have dimension {found} but the index has dimension {expected}; embed with \
         the model the index was built with, or build a new index",
        .path.display()
    )]
    DimMismatch {
        /// The file (or archive member).
        path: PathBuf,
        /// The index's dimension.
        expected: usize,
        /// The vectors' dimension.
        found: usize,
    },
    /// A NaN or ±inf value.
    #[error(
        "{}: row {row}{}, column {column} is {value}; expected finite numbers; fix or drop that \
         row (numbers beyond ±3.4e38 overflow float32 to inf)",
        .path.display(),
        id_note(.id)
    )]
    NonFinite {
        /// The file (or archive member).
        path: PathBuf,
        /// The 0-based row.
        row: usize,
        /// The row's id, when the file gives ids.
        id: Option<u64>,
        /// The 0-based column.
        column: usize,
        /// The value found.
        value: f32,
    },
    /// A zero vector where cosine needs a direction.
    #[error(
        "{}: row {row}{} is a zero vector; cosine needs non-zero vectors; drop row {row} or use \
         --metric dot/l2",
        .path.display(),
        id_note(.id)
    )]
    ZeroVector {
        /// The file (or archive member).
        path: PathBuf,
        /// The 0-based row.
        row: usize,
        /// The row's id, when the file gives ids.
        id: Option<u64>,
    },
    /// An id used by two rows.
    #[error(
        "{}: id {id} appears in row {first_row} and row {second_row}; ids must be unique; drop or \
         renumber one of them",
        .path.display()
    )]
    DuplicateId {
        /// The file (or archive member).
        path: PathBuf,
        /// The id.
        id: u64,
        /// The first row that uses it.
        first_row: usize,
        /// The second row that uses it.
        second_row: usize,
    },
    /// Fewer or more ids than vectors.
    #[error(
        "{}: {ids} ids for {rows} vectors; give exactly one id per vector",
        .path.display()
    )]
    IdCount {
        /// The source of the vectors.
        path: PathBuf,
        /// Ids given.
        ids: usize,
        /// Vectors given.
        rows: usize,
    },
    /// The vectors do not fit in memory.
    #[error(
        "{}: needs {bytes} bytes of memory, which could not be allocated; split the file or use a \
         machine with more memory",
        .path.display()
    )]
    OutOfMemory {
        /// The file (or archive member).
        path: PathBuf,
        /// Bytes needed.
        bytes: u64,
    },
}

fn id_note(id: &Option<u64>) -> String {
    id.map(|id| format!(" (id {id})")).unwrap_or_default()
}

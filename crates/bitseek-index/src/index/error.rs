//! Why an index could not be built, opened or searched.

use crate::encoder::EncoderError;
use crate::format::FormatError;
use crate::input::InputError;
use crate::vector::{Problem, VectorError};
use std::path::PathBuf;

/// Why an index could not be built, opened or searched.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index file could not be read or written.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The vectors to build from were refused.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The encoder file of a `learned:FILE` build could not be used.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// The file passed its checksums but its contents do not fit together.
    #[error("{}: corrupt index: {reason}; rebuild it with `bitseek build`", .path.display())]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// Queries of another dimension than the index's.
    #[error("query has dimension {found} but the index has dimension {expected}; embed queries with the model the index was built with")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The queries' dimension.
        found: usize,
    },
    /// A query with a NaN or ±inf.
    #[error(
        "query {query} has a non-finite value ({value}) at column {column}; queries must be finite"
    )]
    NonFiniteQuery {
        /// The 0-based query in the batch.
        query: usize,
        /// The 0-based column.
        column: usize,
        /// The value found.
        value: f32,
    },
    /// A zero query under cosine.
    #[error("query {query} is a zero vector, which cosine cannot normalise; drop it or build with --metric dot or l2")]
    ZeroQuery {
        /// The 0-based query in the batch.
        query: usize,
    },
    /// A search parameter out of range (k, oversample, their product).
    #[error("invalid search parameter: {0}")]
    BadParam(String),
}

/// A query batch that failed [`VectorBatch::new`], in the words of a search: rows are queries.
impl From<VectorError> for IndexError {
    fn from(e: VectorError) -> Self {
        match e {
            VectorError::NoDimension => IndexError::BadParam("query dimension 0".into()),
            VectorError::NotWholeRows { values, dim } => IndexError::BadParam(format!(
                "{values} query values are not a whole number of {dim}-dimensional vectors"
            )),
            VectorError::Row { row, problem } => match problem {
                Problem::NonFinite { column, value } => IndexError::NonFiniteQuery {
                    query: row,
                    column,
                    value,
                },
                Problem::Zero => IndexError::ZeroQuery { query: row },
                Problem::Dimension { expected, found } => {
                    IndexError::DimensionMismatch { expected, found }
                }
            },
        }
    }
}

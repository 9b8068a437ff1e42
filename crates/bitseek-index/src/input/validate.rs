//! [`validate`]: the whole-file checks `build` runs before it writes anything.

use std::collections::HashMap;
use std::path::Path;

use super::{InputError, Vectors};
use crate::vector::{check_values, Problem};

/// What [`validate`] checks beyond finiteness and unique ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    /// The dimension the vectors must have (an existing index's).
    pub expected_dim: Option<usize>,
    /// Refuse zero vectors, which cosine cannot normalise.
    pub reject_zero: bool,
}

/// Refuses vectors that would corrupt an index silently: no rows, a dimension other than
/// `checks.expected_dim`, NaN or ±inf (row and column), zero vectors when `checks.reject_zero`,
/// ids used twice (both rows), and ids that are not one per row. `path` is only used in messages.
pub fn validate(v: &Vectors, path: &Path, checks: &Checks) -> Result<(), InputError> {
    validate_rows(&v.data, v.dim, v.ids.as_deref(), path, checks)
}

/// [`validate`] on borrowed row-major `data` of dimension `dim`, for callers whose vectors are not
/// in a [`Vectors`] (an array handed over by the Python binding, say), so they need not copy them
/// to get the same checks and messages. `path` names the source in messages.
pub fn validate_rows(
    data: &[f32],
    dim: usize,
    ids: Option<&[u64]>,
    path: &Path,
    checks: &Checks,
) -> Result<(), InputError> {
    let path_buf = || path.to_owned();
    let rows = data.len().checked_div(dim).unwrap_or(0);
    if rows == 0 {
        return Err(InputError::NoRows {
            path: path_buf(),
            found: format!("{} values of dimension {}", data.len(), dim),
        });
    }
    if let Some(expected) = checks.expected_dim {
        if dim != expected {
            return Err(InputError::DimMismatch {
                path: path_buf(),
                expected,
                found: dim,
            });
        }
    }
    if let Some(ids) = ids.filter(|ids| ids.len() != rows) {
        return Err(InputError::IdCount {
            path: path_buf(),
            ids: ids.len(),
            rows,
        });
    }
    let id_of = |row: usize| ids.and_then(|ids| ids.get(row).copied());
    for (row, values) in data.chunks_exact(dim).enumerate() {
        // Rows so tiny that the f32 squared norm underflows are as unusable for cosine as zeros.
        match check_values(values, checks.reject_zero) {
            Ok(()) => {}
            Err(Problem::NonFinite { column, value }) => {
                return Err(InputError::NonFinite {
                    path: path_buf(),
                    row,
                    id: id_of(row),
                    column,
                    value,
                })
            }
            Err(Problem::Zero) => {
                return Err(InputError::ZeroVector {
                    path: path_buf(),
                    row,
                    id: id_of(row),
                })
            }
            Err(Problem::Dimension { .. }) => unreachable!("check_values does not check lengths"),
        }
    }
    if let Some(ids) = ids {
        let mut first: HashMap<u64, usize> = HashMap::with_capacity(ids.len());
        for (row, &id) in ids.iter().enumerate() {
            if let Some(&first_row) = first.get(&id) {
                return Err(InputError::DuplicateId {
                    path: path_buf(),
                    id,
                    first_row,
                    second_row: row,
                });
            }
            first.insert(id, row);
        }
    }
    Ok(())
}

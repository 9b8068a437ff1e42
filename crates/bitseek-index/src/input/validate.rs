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
/// and ids used twice (both rows). `path` is only used in messages.
pub fn validate(v: &Vectors, path: &Path, checks: &Checks) -> Result<(), InputError> {
    let path_buf = || path.to_owned();
    if v.rows() == 0 {
        return Err(InputError::NoRows {
            path: path_buf(),
            found: format!("{} values of dimension {}", v.data.len(), v.dim),
        });
    }
    if let Some(expected) = checks.expected_dim {
        if v.dim != expected {
            return Err(InputError::DimMismatch {
                path: path_buf(),
                expected,
                found: v.dim,
            });
        }
    }
    let id_of = |row: usize| v.ids.as_ref().and_then(|ids| ids.get(row).copied());
    for (row, values) in v.data.chunks_exact(v.dim).enumerate() {
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
    if let Some(ids) = &v.ids {
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

//! `.fvecs` (the ANN benchmarks' format): per row a little-endian `i32` dimension, then that many
//! `f32`. No header and no magic, so a wrong file shows up as a bad dimension or a short row.

use std::io::{BufReader, Read};
use std::path::Path;

use super::{f32_from_le_in_place, read_full, Format, InputError, Place, Vectors};

/// Reads `.fvecs` rows; `file_len` is the whole input's length when known.
pub(super) fn read_fvecs(
    file: impl Read,
    file_len: Option<u64>,
    path: &Path,
) -> Result<Vectors, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut data: Vec<f32> = Vec::new();
    let mut row_buf: Vec<f32> = Vec::new();
    let mut dim = 0usize;
    let mut row = 0usize;
    let mut offset = 0u64;
    loop {
        let mut head = [0u8; 4];
        let got = read_full(&mut r, &mut head).map_err(io_err)?;
        if got == 0 {
            break;
        }
        let truncated = |expected: u64, found: u64| InputError::Truncated {
            path: path.to_owned(),
            row,
            what: "row data (i32 dimension + f32 values)",
            expected,
            found,
        };
        let expected_row = 4 + 4 * dim as u64;
        if got < 4 {
            // Before row 0 we do not know the row size yet; report the dimension field.
            let expected = if row == 0 { 4 } else { expected_row };
            return Err(truncated(expected, got as u64));
        }
        let d = i32::from_le_bytes(head);
        if d <= 0 {
            return Err(InputError::BadDimension {
                path: path.to_owned(),
                row,
                found: d.into(),
            });
        }
        let d = d as usize;
        if row == 0 {
            dim = d;
        } else if d != dim {
            return Err(InputError::Ragged {
                path: path.to_owned(),
                at: Place::Row(row),
                found: d,
                first: Place::Row(0),
                expected: dim,
            });
        }
        let row_bytes = 4 + 4 * d as u64;
        // A garbage dimension must not make us allocate gigabytes before noticing the short file.
        if let Some(len) = file_len {
            let left = len.saturating_sub(offset);
            if left < row_bytes {
                return Err(truncated(row_bytes, left));
            }
            if row == 0 {
                let rows_hint = usize::try_from(len / row_bytes).unwrap_or(usize::MAX);
                data.try_reserve_exact(rows_hint.saturating_mul(d))
                    .map_err(|_| InputError::OutOfMemory {
                        path: path.to_owned(),
                        bytes: len,
                    })?;
            }
        }
        data.try_reserve(d).map_err(|_| InputError::OutOfMemory {
            path: path.to_owned(),
            bytes: (data.len() as u64 + d as u64) * 4,
        })?;
        // Through a reused row buffer rather than zero-filling `data` first: one pass less over
        // the output, which matters at gigabytes.
        row_buf.resize(d, 0.0);
        let got = read_full(&mut r, bytemuck::cast_slice_mut(&mut row_buf)).map_err(io_err)?;
        if got < 4 * d {
            return Err(truncated(row_bytes, 4 + got as u64));
        }
        f32_from_le_in_place(&mut row_buf);
        data.extend_from_slice(&row_buf);
        offset += row_bytes;
        row += 1;
    }
    if row == 0 {
        return Err(InputError::Empty {
            path: path.to_owned(),
            format: Format::Fvecs,
        });
    }
    Ok(Vectors {
        dim,
        data,
        ids: None,
    })
}

// ---------------------------------------------------------------------------------------------

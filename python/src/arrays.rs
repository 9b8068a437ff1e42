//! numpy arrays in and out.
//!
//! Vectors come in as 2-D `float32` or `float16` arrays in C or Fortran order. A C-contiguous
//! `float32` array is read in place; anything else is converted once into a row-major `Vec<f32>`.
//! Other dtypes and shapes are refused with a `ValueError` that says how to convert.

use numpy::ndarray::Array2;
use numpy::prelude::*;
use numpy::{PyArray2, PyReadonlyArray2, PyUntypedArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// Row-major vectors, borrowed from a numpy array or converted once.
pub struct Rows<'py> {
    borrowed: Option<PyReadonlyArray2<'py, f32>>,
    owned: Vec<f32>,
    /// Number of vectors.
    pub rows: usize,
    /// Values per vector.
    pub dim: usize,
}

impl Rows<'_> {
    /// The values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        match &self.borrowed {
            // A C-contiguous array was checked in `rows`, so this cannot fail.
            Some(a) => a.as_slice().unwrap_or(&[]),
            None => &self.owned,
        }
    }

    /// The values as an owned vector: the one copy of an array read in place.
    pub fn into_vec(self) -> Vec<f32> {
        match self.borrowed {
            Some(a) => a.as_slice().map(<[f32]>::to_vec).unwrap_or_default(),
            None => self.owned,
        }
    }
}

/// Reads `obj` (named `what` in messages) as 2-D float vectors.
pub fn rows<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Rows<'py>> {
    if let Ok(a) = obj.cast::<PyArray2<f32>>() {
        let (rows, dim) = (a.shape()[0], a.shape()[1]);
        let a = a.readonly();
        // Fortran order is contiguous too, but its slice is column-major: only C order is borrowed.
        if a.is_c_contiguous() {
            return Ok(Rows {
                borrowed: Some(a),
                owned: Vec::new(),
                rows,
                dim,
            });
        }
        let owned = a.as_array().iter().copied().collect();
        return Ok(Rows {
            borrowed: None,
            owned,
            rows,
            dim,
        });
    }
    if let Ok(a) = obj.cast::<PyArray2<half::f16>>() {
        let (rows, dim) = (a.shape()[0], a.shape()[1]);
        let owned = a.readonly().as_array().iter().map(|x| x.to_f32()).collect();
        return Ok(Rows {
            borrowed: None,
            owned,
            rows,
            dim,
        });
    }
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => Err(PyValueError::new_err(format!(
            "{what}: expected a 2-D float32 or float16 array, found a {}-D {} array; convert it with \
             numpy.asarray({what}, dtype=numpy.float32){}",
            a.ndim(),
            a.dtype(),
            if a.ndim() == 1 { ".reshape(1, -1)" } else { "" }
        ))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what}: expected a numpy array, found {}; convert it with numpy.asarray({what}, \
             dtype=numpy.float32)",
            obj.get_type().name()?
        ))),
    }
}

/// Ids from a 1-D numpy array of unsigned or non-negative integers, or any sequence of ints.
pub fn ids(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    if let Ok(a) = obj.cast::<numpy::PyArray1<u64>>() {
        return Ok(a.readonly().as_array().to_vec());
    }
    obj.extract::<Vec<u64>>().map_err(|e| {
        PyValueError::new_err(format!(
            "ids: expected a sequence of non-negative integers below 2**64: {e}"
        ))
    })
}

/// The `(ids, scores)` arrays a search returns.
pub type IdsScores<'py> = (Bound<'py, PyArray2<u64>>, Bound<'py, PyArray2<f32>>);

/// `(rows, k)` arrays from per-row lists, padded with `pad_id` and NaN past the last hit.
pub fn padded<'py, T>(
    py: Python<'py>,
    results: &[Vec<T>],
    k: usize,
    hit: impl Fn(&T) -> (u64, f32),
) -> IdsScores<'py> {
    let mut ids = Array2::from_elem((results.len(), k), u64::MAX);
    let mut scores = Array2::from_elem((results.len(), k), f32::NAN);
    for (q, hits) in results.iter().enumerate() {
        for (j, h) in hits.iter().take(k).enumerate() {
            let (id, score) = hit(h);
            ids[[q, j]] = id;
            scores[[q, j]] = score;
        }
    }
    (ids.into_pyarray(py), scores.into_pyarray(py))
}

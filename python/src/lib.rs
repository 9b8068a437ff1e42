//! `bitseek._bitseek`: the Python extension module behind the `bitseek` package.
//!
//! A thin shell over the library crates, like the `bitseek` binary: it turns numpy arrays into
//! slices, calls `bitseek-index` and `bitseek-store`, and turns their results and errors back into
//! Python objects. It checks, ranks and formats nothing itself, so Python and the CLI agree on
//! every result and every refusal. The GIL is released around every call that does work.

use pyo3::prelude::*;

mod arrays;
mod codesearch;
mod db;

mod errors;
mod index;
mod learn;
mod threads;

#[pymodule]
fn _bitseek(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CorruptIndex", py.get_type::<errors::CorruptIndex>())?;
    m.add("NO_ID", u64::MAX)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<index::Index>()?;
    m.add_class::<db::Db>()?;
    m.add_class::<codesearch::CodeIndex>()?;
    m.add_class::<learn::Encoder>()?;
    m.add_function(wrap_pyfunction!(learn::train, m)?)?;
    m.add_class::<db::Collection>()?;

    Ok(())
}

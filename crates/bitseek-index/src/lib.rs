//! Search over bitseek codes.
//!
//! Reads vectors ([`input`]), keeps them as an index of codes in one checksummed, memory-mapped file
//! ([`format`]), and answers exact top-k queries over the codes with a blocked flat scan, optionally
//! oversampling and rescoring from a kept `f32` or `int8` copy ([`flat`]).

pub mod format;
pub mod input;

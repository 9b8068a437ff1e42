//! Search over bitseek codes.
//!
//! Reads vectors ([`input`]), builds an [`Index`] of codes and keeps it in one checksummed,
//! memory-mapped file ([`mod@format`]), and answers exact top-k queries over the codes with a blocked
//! flat scan ([`flat`]), optionally oversampling and rescoring from a kept `f32` or `int8` copy.
//! [`exact`] is float brute force: the ground truth for recall and the baseline for speed.
//! [`vector`] holds the checks every vector and query passes once, where it enters.

#![warn(missing_docs)]

pub mod encoder;
pub mod eval;
pub mod exact;
pub mod flat;
pub mod format;
pub mod graph;
pub mod index;
pub mod input;
pub mod ivf;
pub mod retrieval;
pub mod tune;
pub mod vector;

pub use index::{
    BuildOptions, Hit, Index, IndexError, Keep, Meta, Metric, QuantizerChoice, SearchParams,
};
pub use vector::{VectorBatch, VectorError};

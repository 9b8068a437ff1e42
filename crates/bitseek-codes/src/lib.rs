//! Code formats for bitseek and the arithmetic on them.
//!
//! A float vector becomes a *code*: one or more bit-planes of `D'` bits (the dimension padded to a
//! multiple of 64), or a row of `i8`. The quantizers in [`quantizer`] fit their parameters on data and
//! turn vectors into codes ([`quantizer::Quantizer::encode`]) and queries into query codes
//! ([`quantizer::Quantizer::encode_query`]); the [`kernels`] compute distances between them; [`topk`]
//! keeps the best candidates.
//!
//! This crate does no I/O (beyond one warning on stderr for an unknown `BITSEEK_KERNELS` value),
//! spawns no threads and pulls in no heavy dependency, so it can be embedded anywhere; searching,
//! files and threads live in `bitseek-index`.

#![warn(missing_docs)]

pub mod kernels;
pub mod layout;
pub mod pca;
pub mod quantizer;
pub mod rotation;
pub mod topk;

pub use layout::{BitPlanes, BLOCK};

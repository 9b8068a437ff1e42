//! Hybrid retrieval: the lexical leg ([`Bm25`] over identifier words, kept on disk beside the
//! collection, [`LexicalFile`]) and its reciprocal rank fusion with the semantic leg.
//! [`CodeIndex::search_with`](crate::CodeIndex::search_with) runs it at search time and
//! [`crate::eval`] measures it on query → function pairs.

pub(crate) mod file;
mod fusion;
mod lexical;

pub use file::LexicalFile;
pub use fusion::{
    fuse_legs, fuse_ranked, positions, rrf_rank, rrf_scores, searched_rank, FUSION_DEPTH, RRF_K,
};
pub use lexical::{identifier_tokens, term_counts, Bm25};

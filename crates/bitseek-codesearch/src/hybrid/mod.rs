//! Hybrid retrieval: the lexical leg ([`Bm25`] over identifier words, kept on disk beside the
//! collection, [`LexicalFile`]), the question's analysis ([`Question`]: stop words, the identifier
//! it names), the units' names ([`Names`]), and the ranking that fuses them ([`rank`],
//! [`Ranking`]: reciprocal rank fusion, definitions first, tests demoted).
//! [`CodeIndex::search_with`](crate::CodeIndex::search_with) runs it at search time and
//! [`crate::eval`] measures it on query → function pairs.

pub(crate) mod file;
mod fusion;
mod lexical;
mod names;
mod query;
mod rank;
mod table;

pub use file::LexicalFile;
pub use fusion::{
    fuse_legs, fuse_ranked, fuse_weighted, positions, rrf_rank, rrf_scores, searched_rank,
    FUSION_DEPTH, RRF_K,
};
pub use lexical::{identifier_tokens, term_counts, Bm25};
pub use names::{Match, Names, Role, UnitInfo};
pub use query::{name_words, Question, STOP_WORDS};
pub use rank::{lexical_weight, lexical_words, rank, Ranking, ADAPTED_LEXICAL_WEIGHT};

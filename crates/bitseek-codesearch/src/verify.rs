//! `bitseek index --verify`: every checksum of a code index, whatever was verified before.
//!
//! Opening an index checks every checksum only the first time a generation is opened (the store's
//! `verified.json`); later opens trust that verification while the files keep their identities.
//! This is the check that trusts nothing: the segment's sections, the payload file and every
//! payload, and the lexical file (its checksum, every posting, the name table), each against
//! what the manifest records.

use crate::hybrid::file as lexical_file;
use crate::{index_dir, CodeError};
use bitseek_store::GenerationCollection;
use std::path::Path;

/// What [`verify_index`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The generation that was checked.
    pub generation: u64,
    pub units: usize,
    pub files: usize,
    /// Bytes read and checked: manifest, segment, payloads and lexical file.
    pub bytes: u64,
}

/// Checks every checksum and payload of the index of `root`, and records the verification (so
/// the next open need not repeat it). A damaged file is an error naming it and saying to re-index.
pub fn verify_index(root: &Path) -> Result<Verified, CodeError> {
    let dir = index_dir(root);
    let (collection, extra) = crate::code_collection(root, GenerationCollection::verify(&dir))?;
    let not_code = |reason: String| CodeError::NotACodeIndex {
        root: root.to_owned(),
        reason,
    };
    let mut bytes = collection.size_bytes();
    if let Some(entry) = &extra.lexical {
        lexical_file::read(&dir, entry, collection.rows(), lexical_file::Checks::All)
            .map_err(|(path, why)| not_code(format!("{}: {why}", path.display())))?;
        bytes += std::fs::metadata(dir.join(&entry.file)).map_or(0, |m| m.len());
    }
    Ok(Verified {
        generation: collection.generation(),
        units: collection.rows(),
        files: extra.files,
        bytes,
    })
}

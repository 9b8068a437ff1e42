//! A hit's own code and the lines around it, read from the repository as it is now.
//!
//! The index keeps where a unit is (path, lines) and the hash of the file it came from, not the
//! code itself, so the text is read back from the file. A file edited or deleted since indexing
//! would give other lines than the ones that matched: that is reported ([`Stale`]) instead of
//! printing wrong code. Shared by the CLI, the server and the Python binding.

use crate::{content_hash, CodeHit};
use std::path::Path;

/// The most context lines asked for on either side (a larger ask is a mistake, not a need).
pub const MAX_CONTEXT: usize = 1000;

/// A unit's lines and up to `context` lines on either side, clamped at the file's edges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HitText {
    /// Lines `max(1, line - context) .. line`.
    pub before: Vec<String>,
    /// The unit itself: lines `line ..= end_line` (its doc comment, if any, is in `before`).
    pub text: Vec<String>,
    /// Lines `end_line + 1 ..= min(last line, end_line + context)`.
    pub after: Vec<String>,
}

impl HitText {
    /// The number of the first line in [`HitText::before`] (the unit's first line when empty).
    pub fn first_line(&self, hit: &CodeHit) -> usize {
        hit.line - self.before.len()
    }
}

/// Why a hit's text cannot be shown: the file is not the one that was indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The file is gone or cannot be read.
    Missing,
    /// The file changed since indexing (another hash, or too short for the unit's lines).
    Changed,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stale::Missing => "file missing since indexing; re-run `bitseek index`",
            Stale::Changed => "file changed since indexing; re-run `bitseek index`",
        })
    }
}

/// Reads `hit`'s file under `root` and cuts its text and `context` lines around it.
pub fn hit_text(root: &Path, hit: &CodeHit, context: usize) -> Result<HitText, Stale> {
    let bytes = std::fs::read(root.join(&hit.path)).map_err(|_| Stale::Missing)?;
    hit_text_in(&bytes, hit, context)
}

/// [`hit_text`] over the file's bytes already read. `context` is capped at [`MAX_CONTEXT`].
pub fn hit_text_in(bytes: &[u8], hit: &CodeHit, context: usize) -> Result<HitText, Stale> {
    SourceFile::new(bytes).hit_text(hit, context)
}

/// A file read for hits: hashed and split into lines once, so callers showing many hits of one
/// file (a search's top-k, `--group`) do that work once per file rather than once per hit.
#[derive(Clone, Debug)]
pub struct SourceFile {
    hash: String,
    lines: Vec<String>,
}

impl SourceFile {
    /// Hashes `bytes` (as the indexer does) and splits them into lines.
    pub fn new(bytes: &[u8]) -> SourceFile {
        SourceFile {
            hash: content_hash(bytes),
            lines: String::from_utf8_lossy(bytes)
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// `hit`'s text and `context` lines around it (capped at [`MAX_CONTEXT`]), or
    /// [`Stale::Changed`] when this is not the file the hit was indexed from.
    pub fn hit_text(&self, hit: &CodeHit, context: usize) -> Result<HitText, Stale> {
        // Hits from an index without hashes are only checked against the file's length.
        if !hit.file_hash.is_empty() && self.hash != hit.file_hash {
            return Err(Stale::Changed);
        }
        let lines = &self.lines;
        if hit.line == 0 || hit.end_line < hit.line || hit.end_line > lines.len() {
            return Err(Stale::Changed);
        }
        let context = context.min(MAX_CONTEXT);
        let (start, end) = (hit.line - 1, hit.end_line); // 0-based, end exclusive
        Ok(HitText {
            before: lines[start.saturating_sub(context)..start].to_vec(),
            text: lines[start..end].to_vec(),
            after: lines[end..(end + context).min(lines.len())].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(line: usize, end_line: usize, bytes: &[u8]) -> CodeHit {
        CodeHit {
            path: "f.rs".into(),
            line,
            end_line,
            doc_start_line: line,
            score: 1.0,
            signature: String::new(),
            lang: "rust".into(),
            kind: "function".into(),
            name: "f".into(),
            file_hash: content_hash(bytes),
        }
    }

    const FILE: &[u8] = b"l1\nl2\nl3\nl4\nl5\n";

    #[test]
    fn context_is_clamped_at_the_first_line() {
        let t = hit_text_in(FILE, &hit(1, 2, FILE), 3).unwrap();
        assert!(t.before.is_empty());
        assert_eq!(t.text, ["l1", "l2"]);
        assert_eq!(t.after, ["l3", "l4", "l5"]);
        assert_eq!(t.first_line(&hit(1, 2, FILE)), 1);
    }

    #[test]
    fn context_is_clamped_at_the_last_line() {
        let t = hit_text_in(FILE, &hit(5, 5, FILE), 2).unwrap();
        assert_eq!(t.before, ["l3", "l4"]);
        assert_eq!(t.text, ["l5"]);
        assert!(t.after.is_empty());
        assert_eq!(t.first_line(&hit(5, 5, FILE)), 3);
    }

    #[test]
    fn context_larger_than_the_file_gives_the_whole_file() {
        let no_newline = b"a\nb\nc";
        let t = hit_text_in(no_newline, &hit(2, 2, no_newline), MAX_CONTEXT + 5).unwrap();
        assert_eq!(
            (t.before, t.text, t.after),
            (
                vec!["a".to_string()],
                vec!["b".to_string()],
                vec!["c".to_string()]
            )
        );
    }

    #[test]
    fn a_changed_or_short_file_is_stale_not_wrong_lines() {
        let h = hit(4, 5, FILE);
        assert_eq!(hit_text_in(b"l1\nl2\n", &h, 1), Err(Stale::Changed));
        assert_eq!(
            hit_text_in(b"l1\nl2\nl3\nl4\nl5 edited\n", &h, 1),
            Err(Stale::Changed)
        );
        let unhashed = CodeHit {
            file_hash: String::new(),
            ..h
        };
        assert_eq!(hit_text_in(b"l1\nl2\n", &unhashed, 1), Err(Stale::Changed));
        assert_eq!(hit_text_in(FILE, &unhashed, 0).unwrap().text, ["l4", "l5"]);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(hit_text(dir.path(), &unhashed, 1), Err(Stale::Missing));
        assert!(Stale::Missing.to_string().contains("bitseek index"));
    }
}

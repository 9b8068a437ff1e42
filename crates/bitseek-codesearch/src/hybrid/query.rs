//! What a question says about itself before any unit is scored: its words for BM25 (without
//! question stop words), the identifier it may name (`notify_one`, `Notify::notify_one`,
//! `notify one`), and whether it asks for tests.

use super::lexical::{identifier_tokens, split_words, Digits};

/// Words that carry no meaning in a question about code ("where is the", "how do I"); dropped
/// from the lexical leg's words unless the question is an identifier.
pub const STOP_WORDS: [&str; 44] = [
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "of", "to", "in", "on",
    "at", "by", "for", "with", "from", "as", "into", "and", "or", "how", "what", "where", "which",
    "who", "why", "when", "does", "do", "did", "this", "that", "these", "those", "it", "its",
    "can", "we", "you", "me", "my",
];

/// What separates the segments of a qualified name (`a::b`, `a.b`, `A#b`, `a/b`).
const SEPARATORS: [char; 4] = [':', '.', '#', '/'];

/// Words that make a question ask for test, benchmark or example code.
const TEST_WORDS: [&str; 9] = [
    "test",
    "tests",
    "tested",
    "testing",
    "unittest",
    "bench",
    "benchmark",
    "benchmarks",
    "fixture",
];

/// A question, analysed once.
#[derive(Clone, Debug)]
pub struct Question {
    /// Every [`identifier_tokens`] word of the question.
    pub words: Vec<String>,
    /// The words without [`STOP_WORDS`].
    pub content_words: Vec<String>,
    /// The [`name_words`] of the identifier the question may be: the whole question, or the last
    /// segment of a qualified one (`Notify::notify_one`, `DataFrame.to_csv` → notify, one).
    pub name: Vec<String>,
    /// The [`name_words`] of a qualified question's owner (`Notify::notify_one` → notify).
    pub owner: Option<Vec<String>>,
    /// The question as written, trimmed and without a trailing `()`, for exact-case matches.
    pub raw: String,
    /// One token without spaces: written like an identifier.
    pub one_token: bool,
    /// The question asks for tests, benchmarks or fixtures.
    pub asks_for_tests: bool,
}

impl Question {
    /// Analyses `text`.
    pub fn new(text: &str) -> Question {
        let words = identifier_tokens(text);
        let content_words: Vec<String> = words
            .iter()
            .filter(|w| !STOP_WORDS.contains(&w.as_str()))
            .cloned()
            .collect();
        let raw = text.trim().trim_end_matches("()").trim().to_string();
        let one_token = !raw.is_empty() && !raw.contains(char::is_whitespace);
        let (name, owner) = if one_token {
            // `a::b::c`, `a.b.c`, `A#b`: the last segment names the unit, the one before its owner.
            let segments: Vec<&str> = raw.split(SEPARATORS).filter(|s| !s.is_empty()).collect();
            match segments.as_slice() {
                [] => (Vec::new(), None),
                [one] => (name_words(one), None),
                [.., owner, last] => (name_words(last), Some(name_words(owner))),
            }
        } else {
            (name_words(&raw), None)
        };
        let asks_for_tests = words.iter().any(|w| TEST_WORDS.contains(&w.as_str()));
        Question {
            words,
            content_words,
            name,
            owner,
            raw,
            one_token,
            asks_for_tests,
        }
    }

    /// The last segment of a one-token question as written (`notify_one` for
    /// `Notify::notify_one`).
    pub fn raw_name(&self) -> &str {
        if !self.one_token {
            return &self.raw;
        }
        self.raw
            .rsplit(SEPARATORS)
            .find(|s| !s.is_empty())
            .unwrap_or("")
    }
}

/// The words of an identifier or of plain words, for comparing names: lower-case, split at
/// non-alphanumerics, `_`, lower→upper changes and acronym ends (`parseHTTPRequest` → parse,
/// http, request); digits stay with the letters before them (`utf8`, `http2`); single letters are
/// kept (`get_x` is not `get`).
pub fn name_words(text: &str) -> Vec<String> {
    split_words(text, Digits::WithLetters, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_split_like_identifiers_and_keep_digits_and_letters() {
        assert_eq!(name_words("notify_one"), strings(&["notify", "one"]));
        assert_eq!(name_words("notify one"), strings(&["notify", "one"]));
        assert_eq!(name_words("NotifyOne"), strings(&["notify", "one"]));
        assert_eq!(
            name_words("parseHTTP2Frame"),
            strings(&["parse", "http2", "frame"])
        );
        assert_eq!(name_words("get_x"), strings(&["get", "x"]));
        assert_eq!(name_words("utf8_len"), strings(&["utf8", "len"]));
    }

    #[test]
    fn questions_know_their_identifier_and_stop_words() {
        let q = Question::new("Notify::notify_one()");
        assert!(q.one_token);
        assert_eq!(q.name, strings(&["notify", "one"]));
        assert_eq!(q.owner, Some(strings(&["notify"])));
        assert_eq!(q.raw_name(), "notify_one");
        let q = Question::new("DataFrame.to_csv");
        assert_eq!(
            (q.name.clone(), q.owner.clone()),
            (strings(&["to", "csv"]), Some(strings(&["data", "frame"])))
        );
        let q = Question::new("where is the index file checksummed?");
        assert!(!q.one_token && !q.asks_for_tests);
        assert_eq!(q.content_words, strings(&["index", "file", "checksummed"]));
        assert_eq!(q.name.len(), 6);
        assert!(Question::new("tests of the parser").asks_for_tests);
        assert!(!Question::new("parse a latest value").asks_for_tests);
    }
}

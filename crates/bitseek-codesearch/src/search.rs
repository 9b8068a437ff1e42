//! Opening an index and answering questions.

use crate::hybrid::file::{self as lexical_file, Tables};
use crate::hybrid::{lexical_words, rank, Names, Question, Ranking, FUSION_DEPTH};
use crate::{index_dir, CodeError, CodeHead, ModelInfo, UnitPayload};
use bitseek_index::retrieval::top_candidates;
use bitseek_index::SearchParams;
use bitseek_store::GenerationCollection;
use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The language names `--lang` accepts (as stored in payloads).
pub const LANGS: [&str; 10] = [
    "python",
    "rust",
    "javascript",
    "typescript",
    "tsx",
    "go",
    "java",
    "c",
    "cpp",
    "text",
];

/// Candidates per hit taken from the 1-bit codes and rescored with the kept `f32` vectors.
const OVERSAMPLE: usize = 10;

/// Which units a search may return: one language, and/or paths matching a glob.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    lang: Option<String>,
    path: Option<GlobMatcher>,
    tests_plainly: bool,
}

impl Filter {
    /// `lang` is a name from [`LANGS`] (or a common alias: `py`, `rs`, `js`, `ts`, `c++`, `golang`),
    /// case-insensitive. `path` is a glob over the unit's path relative to the indexed root
    /// (`*` also crosses `/`); it matches a file when it matches the file's path or one of its
    /// directories, so `--path crates/bitseek` keeps everything under that directory.
    pub fn new(lang: Option<&str>, path: Option<&str>) -> Result<Filter, CodeError> {
        let lang = match lang {
            None => None,
            Some(l) => {
                let l = l.trim().to_ascii_lowercase();
                let name = match l.as_str() {
                    "py" => "python",
                    "rs" => "rust",
                    "js" | "jsx" => "javascript",
                    "ts" => "typescript",
                    "c++" | "cxx" | "cc" => "cpp",
                    "golang" => "go",
                    other => other,
                };
                if !LANGS.contains(&name) {
                    return Err(CodeError::BadFilter(format!(
                        "unknown language {l:?} for --lang; expected one of {}",
                        LANGS.join(", ")
                    )));
                }
                Some(name.to_owned())
            }
        };
        let path = match path {
            None => None,
            Some(g) => {
                let g = g.trim().trim_start_matches("./");
                let g = if g.len() > 1 {
                    g.trim_end_matches('/')
                } else {
                    g
                };
                let glob = GlobBuilder::new(g).build().map_err(|e| {
                    CodeError::BadFilter(format!("--path {g:?} is not a valid glob: {e}"))
                })?;
                Some(glob.compile_matcher())
            }
        };
        Ok(Filter {
            lang,
            path,
            tests_plainly: false,
        })
    }

    /// With `plainly`, test, benchmark and example code ranks like library code (`bitseek search
    /// --tests`); by default it ranks below library code of the same score unless the question
    /// asks for tests. Either way it is returned.
    pub fn with_tests(mut self, plainly: bool) -> Filter {
        self.tests_plainly = plainly;
        self
    }

    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.lang.is_none() && self.path.is_none()
    }

    /// Whether a unit with this payload passes.
    pub fn accepts(&self, payload: &serde_json::Value) -> bool {
        if let Some(lang) = &self.lang {
            if payload.get("lang").and_then(|l| l.as_str()) != Some(lang.as_str()) {
                return false;
            }
        }
        if let Some(glob) = &self.path {
            let Some(path) = payload.get("path").and_then(|p| p.as_str()) else {
                return false;
            };
            return Path::new(path)
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && glob.is_match(a));
        }
        true
    }
}

/// One answer: a unit, where it is, and how close it is to the question.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CodeHit {
    /// Relative to the indexed root, `/`-separated.
    pub path: String,
    /// The line the definition starts on (after its doc comment), 1-based.
    pub line: usize,
    pub end_line: usize,
    /// The first line of the doc comment and attributes (equal to `line` when none).
    pub doc_start_line: usize,
    /// Cosine similarity between the question and the unit.
    pub score: f32,
    pub signature: String,
    pub lang: String,
    pub kind: String,
    pub name: String,
    /// The content hash of the file when it was indexed ([`crate::hit_text`] checks it).
    pub file_hash: String,
}

/// Hits grouped by file, files in the order of their best hit, hits in rank order within each.
pub fn group_by_file(hits: &[CodeHit]) -> Vec<(&str, Vec<&CodeHit>)> {
    let mut groups: Vec<(&str, Vec<&CodeHit>)> = Vec::new();
    for h in hits {
        match groups.iter_mut().find(|(p, _)| *p == h.path) {
            Some((_, g)) => g.push(h),
            None => groups.push((&h.path, vec![h])),
        }
    }
    groups
}

/// An open code index (`DIR/.bitseek`).
#[derive(Debug)]
pub struct CodeIndex {
    root: PathBuf,
    collection: GenerationCollection,
    extra: CodeHead,
    /// The lexical leg and the name table, mapped on first use.
    lexical: OnceLock<Result<Tables, String>>,
    /// The name table of an index whose lexical file has none, from the payloads on first use.
    names: OnceLock<Names>,
}

/// How [`CodeIndex::search_with`] ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchMode {
    /// The embeddings alone: 1-bit codes, rescored with the kept `f32` vectors.
    Semantic,
    /// The semantic ranking fused with BM25 over identifier words by reciprocal rank fusion (the
    /// best [`FUSION_DEPTH`] of each leg), the units that define the identifier a question names
    /// first, test code below library code ([`Ranking::default`]). The default: it beats
    /// [`SearchMode::Semantic`] on the code-search dev sets (`bitseek eval-code --ranking`).
    Hybrid,
}

impl CodeIndex {
    /// Opens the index of the repository at `root`.
    pub fn open(root: &Path) -> Result<CodeIndex, CodeError> {
        let (collection, extra) =
            crate::code_collection(root, GenerationCollection::open(&index_dir(root)))?;
        let not_code = |reason: String| CodeError::NotACodeIndex {
            root: root.to_owned(),
            reason,
        };
        if extra.model.dim != collection.dim() {
            return Err(not_code(format!(
                "the model has {} dimensions but the vectors {}",
                extra.model.dim,
                collection.dim()
            )));
        }
        Ok(CodeIndex {
            root: root.to_owned(),
            collection,
            extra,
            lexical: OnceLock::new(),
            names: OnceLock::new(),
        })
    }

    /// The indexed repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The model the index was built with.
    pub fn model(&self) -> &ModelInfo {
        &self.extra.model
    }

    /// Units in the index.
    pub fn units(&self) -> usize {
        self.collection.rows()
    }

    /// Files in the index.
    pub fn files(&self) -> usize {
        self.extra.files
    }

    /// The underlying collection.
    pub fn collection(&self) -> &GenerationCollection {
        &self.collection
    }

    /// Fails unless questions embedded by `model` can be compared with this index's vectors.
    pub fn check_model(&self, model: &ModelInfo) -> Result<(), CodeError> {
        let built = &self.extra.model;
        if built.dim == model.dim && built.fingerprint == model.fingerprint {
            if built.adapter != model.adapter {
                return Err(CodeError::AdapterMismatch {
                    root: self.root.clone(),
                    built: crate::adapter_words(&built.adapter),
                    using: crate::adapter_words(&model.adapter),
                });
            }
            if built.encoder != model.encoder {
                return Err(CodeError::EncoderMismatch {
                    root: self.root.clone(),
                    built: crate::encoder_words(&built.encoder),
                    using: crate::encoder_words(&model.encoder),
                });
            }
            return Ok(());
        }
        Err(CodeError::ModelMismatch {
            root: self.root.clone(),
            built: Box::new(built.clone()),
            using: Box::new(model.clone()),
        })
    }

    /// The `k` best units for each embedded question that pass `filter`, best first. Candidates
    /// come from the 1-bit codes (10 per hit) and are rescored with the kept `f32` vectors.
    pub fn search(
        &self,
        questions: &[Vec<f32>],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Vec<CodeHit>>, CodeError> {
        self.semantic(questions, k, filter)?
            .into_iter()
            .map(|hits| {
                hits.into_iter()
                    .map(|(row, score)| self.hit(row, score))
                    .collect()
            })
            .collect()
    }

    /// [`search`](Self::search) as `(row, cosine)` pairs.
    fn semantic(
        &self,
        questions: &[Vec<f32>],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Vec<(usize, f32)>>, CodeError> {
        let dim = self.collection.dim();
        let mut queries = Vec::with_capacity(questions.len() * dim);
        for q in questions {
            if q.len() != dim {
                return Err(CodeError::EmbedShape {
                    expected: dim,
                    found: q.len(),
                });
            }
            queries.extend_from_slice(q);
        }
        let params = SearchParams {
            k,
            oversample: OVERSAMPLE,
            rescore: true,
            ..SearchParams::default()
        };
        let accept = |p: &serde_json::Value| filter.accepts(p);
        let filter_fn: Option<&dyn Fn(&serde_json::Value) -> bool> = if filter.is_empty() {
            None
        } else {
            Some(&accept)
        };
        let found = self.collection.search(&queries, &params, filter_fn)?;
        Ok(found
            .into_iter()
            .map(|hits| hits.into_iter().map(|h| (h.id as usize, h.score)).collect())
            .collect())
    }

    /// The `k` best units for each question (its text and its embedding) that pass `filter`,
    /// best first, ranked as `mode` says. Under [`SearchMode::Hybrid`] a hit's `score` is still
    /// its cosine similarity to the question; the order is the fused one.
    pub fn search_with(
        &self,
        texts: &[&str],
        questions: &[Vec<f32>],
        k: usize,
        filter: &Filter,
        mode: SearchMode,
    ) -> Result<Vec<Vec<CodeHit>>, CodeError> {
        if mode == SearchMode::Semantic || self.units() == 0 {
            return self.search(questions, k, filter);
        }
        assert_eq!(texts.len(), questions.len(), "one text per question");
        let bm25 = &self.lexical()?.bm25;
        let names = self.names()?;
        let ranking = Ranking {
            tests_plainly: filter.tests_plainly,
            ..Ranking::for_model(self.model())
        };
        let depth = k.max(FUSION_DEPTH);
        let semantic = self.semantic(questions, depth, filter)?;
        let mut scores = vec![0f32; self.units()];
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(questions.len());
        // A filter reads every payload (once per open, checksum checked); none reads none.
        let payloads = if filter.is_empty() {
            None
        } else {
            Some(self.collection.payloads()?)
        };
        let accept = |row: u32| match payloads {
            None => true,
            Some(payloads) => payloads
                .get(row as usize)
                .is_some_and(|p| filter.accepts(p)),
        };
        for ((text, question), sem) in texts.iter().zip(questions).zip(semantic) {
            let q = Question::new(text);
            bm25.scores_words(lexical_words(&q, &ranking), &mut scores);
            // Rows the filter rejects or that share no word with the question take no part.
            if payloads.is_some() {
                for (row, s) in scores.iter_mut().enumerate() {
                    if *s > 0.0 && !accept(row as u32) {
                        *s = 0.0;
                    }
                }
            }
            let mut lexical = top_candidates(&scores, depth, &mut scratch);
            lexical.retain(|&r| scores[r as usize] > 0.0);
            let sem_rows: Vec<u32> = sem.iter().map(|&(r, _)| r as u32).collect();
            let fused = rank(
                &q,
                &sem_rows,
                &lexical,
                names,
                |w| bm25.idf(w),
                accept,
                &ranking,
            );
            let top: Vec<usize> = fused.iter().take(k).map(|&(r, _)| r as usize).collect();
            // Cosines for the rows only the lexical leg found, from the kept f32 vectors.
            let missing: Vec<usize> = top
                .iter()
                .copied()
                .filter(|r| !sem_rows.contains(&(*r as u32)))
                .collect();
            let vectors = self.collection.vectors_of(&missing)?;
            let cosine_of = |row: usize| -> f32 {
                if let Some(&(_, score)) = sem.iter().find(|h| h.0 == row) {
                    return score;
                }
                let i = missing.iter().position(|&m| m == row).unwrap_or(0);
                let dim = question.len();
                let v = &vectors[i * dim..(i + 1) * dim];
                bitseek_index::vector::dot(v, question)
            };
            let hits = top
                .iter()
                .map(|&row| self.hit(row, cosine_of(row)))
                .collect::<Result<Vec<_>, CodeError>>()?;
            out.push(hits);
        }
        Ok(out)
    }

    /// The names, kinds and test flags of the units: the lexical file's name table, or for
    /// indexes written before it kept one, built from every payload once per open.
    fn names(&self) -> Result<&Names, CodeError> {
        if let Some(names) = &self.lexical()?.names {
            return Ok(names);
        }
        if let Some(names) = self.names.get() {
            return Ok(names);
        }
        let payloads = self.collection.payloads()?;
        Ok(self.names.get_or_init(|| Names::of_payloads(payloads)))
    }

    /// The BM25 index and name table of the units, read in place from the lexical file on first
    /// use (checked fully the first time the file is opened, `hybrid::file`).
    fn lexical(&self) -> Result<&Tables, CodeError> {
        let loaded = self.lexical.get_or_init(|| {
            let entry = self.extra.lexical.as_ref().ok_or_else(|| {
                "the index has no lexical (BM25) file: it was built by an older bitseek".to_string()
            })?;
            lexical_file::read(
                self.collection.dir(),
                entry,
                self.units(),
                lexical_file::Checks::Once,
            )
            .map_err(|(path, why)| format!("{}: {why}", path.display()))
        });
        loaded.as_ref().map_err(|reason| CodeError::NotACodeIndex {
            root: self.root.clone(),
            reason: reason.clone(),
        })
    }

    fn hit(&self, row: usize, score: f32) -> Result<CodeHit, CodeError> {
        let p: UnitPayload = self
            .collection
            .payload(row)?
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| CodeError::NotACodeIndex {
                root: self.root.clone(),
                reason: format!("row {row} has no valid unit payload"),
            })?;
        Ok(CodeHit {
            path: p.path,
            line: p.start_line,
            end_line: p.end_line,
            doc_start_line: p.doc_start_line,
            score,
            signature: p.signature,
            lang: p.lang,
            kind: p.kind,
            name: p.name,
            file_hash: p.file_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::{file::encode_v1, LexicalFile};
    use crate::testing::HashedWords;
    use crate::{index_repo, IndexOptions};
    use bitseek_embed::Embedder;

    const DIM: usize = 32;

    /// The crate's test embedder (bag of hashed words).
    const WORDS: HashedWords = HashedWords::new(DIM);

    /// The tables read in place from the version 2 file rank exactly as before them: the
    /// version 1 file (decoded whole) with the name table built from every payload, on this
    /// crate's own source, for every unit's name as written and as split words and for plain
    /// questions, filtered and not.
    #[test]
    fn the_mapped_tables_rank_as_the_decoded_file_and_payloads_did() {
        let repo = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                std::fs::copy(&path, repo.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let model = ModelInfo {
            name: "words".into(),
            dim: DIM,
            fingerprint: "0".repeat(32),
            precision: "f32".into(),
            encoder: None,
            adapter: None,
        };
        index_repo(
            repo.path(),
            &WORDS,
            &model,
            &IndexOptions::default(),
            &|_, _| {},
        )
        .unwrap();
        let mapped = CodeIndex::open(repo.path()).unwrap();
        assert!(mapped.lexical().unwrap().names.is_some());
        let dir = mapped.collection.dir().to_owned();
        let old = encode_v1(&mapped.lexical().unwrap().bm25);
        let xxh3 = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&old));
        let v1 = LexicalFile {
            file: format!("lexical-{xxh3}.bin"),
            xxh3,
        };
        std::fs::write(dir.join(&v1.file), &old).unwrap();
        let mut decoded = CodeIndex::open(repo.path()).unwrap();
        decoded.extra.lexical = Some(v1);
        assert!(decoded.lexical().unwrap().names.is_none());

        let payloads = mapped.collection.payloads().unwrap();
        let mut questions: Vec<String> = payloads
            .iter()
            .filter_map(|p| p.get("name").and_then(|n| n.as_str()))
            .flat_map(|n| [n.to_string(), crate::hybrid::name_words(n).join(" ")])
            .collect();
        questions.extend(
            [
                "where is the lexical file written",
                "how are hits grouped by file",
                "tests for the watcher",
                "CodeIndex::open",
            ]
            .map(String::from),
        );
        assert!(questions.len() > 200, "{}", questions.len());
        let filters = [
            Filter::default(),
            Filter::default().with_tests(true),
            Filter::new(None, Some("s*.rs")).unwrap(),
        ];
        for q in &questions {
            let v = WORDS.embed(&[q.as_str()]).unwrap();
            for f in &filters {
                let a = mapped.search_with(&[q.as_str()], &v, 10, f, SearchMode::Hybrid);
                let b = decoded.search_with(&[q.as_str()], &v, 10, f, SearchMode::Hybrid);
                assert_eq!(a.unwrap(), b.unwrap(), "{q:?} {f:?}");
            }
        }
    }
}

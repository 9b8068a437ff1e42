//! The inputs of an evaluation: a file of query → function pairs and the vectors of both sides,
//! shipped beside the file or embedded here.

use super::{EvalError, Progress};
use bitseek_embed::{Adapter, BertEmbedder, EmbedOptions, Embedder, ModelDir};
use bitseek_index::input::{read_vectors, Vectors};
use bitseek_index::{Metric, VectorBatch};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One line of a pairs file (the fields the evaluation reads; others are ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct Pair {
    /// The question, in plain words.
    pub query: String,
    /// The function that answers it.
    pub code: String,
    /// Whether the question names the function (those are easy for any lexical method).
    pub name_in_query: bool,
    /// The language of the function; one per file.
    pub lang: String,
    /// The package the function comes from (`--ranking` splits by it).
    #[serde(default)]
    pub package: Option<String>,
    /// The function's name, qualified in Python (`DataFrame.to_csv`); `--ranking` asks for it.
    #[serde(default)]
    pub name: Option<String>,
}

/// The pairs of one file, all in one language, in file order (the files are shuffled with a
/// seed, so the first `n` are a uniform sample).
#[derive(Clone, Debug)]
pub struct PairSet {
    /// The pairs file.
    pub path: PathBuf,
    /// The evaluated pairs: the first `limit` of the file, or all.
    pub pairs: Vec<Pair>,
    /// Pairs in the file.
    pub in_file: usize,
    /// The one language of the file.
    pub lang: String,
}

impl PairSet {
    /// Reads a `.jsonl` or `.jsonl.gz` file of pairs (one `{"query", "code", "name_in_query",
    /// "lang"}` object a line) and keeps the first `limit`. Fails on a file that mixes
    /// languages: their pools must never be mixed.
    pub fn read(path: &Path, limit: Option<usize>) -> Result<PairSet, EvalError> {
        let mut pairs = read_pairs(path)?;
        let in_file = pairs.len();
        let lang = pairs[0].lang.clone();
        if let Some((i, p)) = pairs.iter().enumerate().find(|(_, p)| p.lang != lang) {
            return Err(EvalError::MixedLangs {
                path: path.to_owned(),
                line: i + 1,
                found: p.lang.clone(),
                first: lang,
            });
        }
        pairs.truncate(limit.unwrap_or(in_file).min(in_file));
        Ok(PairSet {
            path: path.to_owned(),
            pairs,
            in_file,
            lang,
        })
    }

    /// The evaluated pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair is evaluated (never, for a set that was read).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Reads the pairs of a `.jsonl` or `.jsonl.gz` file; errors name the file and line.
fn read_pairs(path: &Path) -> Result<Vec<Pair>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Open {
        path: path.to_owned(),
        source,
    })?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut pairs = Vec::new();
    for (i, line) in BufReader::with_capacity(1 << 20, reader)
        .lines()
        .enumerate()
    {
        let line = line.map_err(|source| EvalError::ReadLine {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).map_err(|source| EvalError::BadPair {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        pairs.push(pair);
    }
    if pairs.is_empty() {
        return Err(EvalError::NoPairs {
            path: path.to_owned(),
        });
    }
    Ok(pairs)
}

/// Where the vectors of the pairs come from.
#[derive(Clone, Debug, Default)]
pub struct VectorSource {
    /// Embed the texts even when the shipped vectors exist.
    pub embed: bool,
    /// Model directory for embedding (`None`: `$BITSEEK_MODEL_DIR` or the cache).
    pub model_dir: Option<PathBuf>,
    /// Embed the functions with the model's 8-bit path, as `bitseek index --int8` stores them;
    /// the questions stay in f32 (shipped, or embedded in f32 under `embed`), as `bitseek search`
    /// embeds them.
    pub int8: bool,
    /// A LoRA adapter merged into the model's weights at load (read by `Adapter::open`, or
    /// [`crate::adapter::resolve_adapter`]); both sides are then embedded (the shipped vectors
    /// are the base model's).
    pub adapter: Option<Adapter>,
}

/// The query and code vectors of a [`PairSet`] (row `i` embeds pair `i`), L2-normalised.
#[derive(Clone, Debug)]
pub struct PairVectors {
    /// One row per evaluated query.
    pub queries: Vectors,
    /// One row per evaluated function.
    pub codes: Vectors,
    /// Where they came from, in words (for the report).
    pub source: String,
}

/// `dev-python` for `dir/dev-python.jsonl.gz`.
fn stem(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name
        .strip_suffix(".gz")
        .unwrap_or(&name)
        .trim_end_matches(".jsonl")
        .trim_end_matches(".ndjson")
        .to_string();
    path.with_file_name(base)
}

impl PairVectors {
    /// The shipped `<stem>.query.f16.npy` / `<stem>.code.f16.npy` beside the pairs file or (when
    /// `source` asks, or they are missing) the model's embeddings; cast to `f32`, cut to the
    /// evaluated pairs and L2-normalised (cosine). Under `source.int8` the functions are embedded
    /// with the 8-bit path and the questions are not: what a user of an int8 index gets.
    /// `progress` sees one step per embedded text.
    pub fn load(
        set: &PairSet,
        source: &VectorSource,
        progress: &mut dyn Progress,
    ) -> Result<PairVectors, EvalError> {
        let shipped = if source.embed || source.adapter.is_some() {
            None
        } else {
            shipped(set)?
        };
        let (mut queries, mut codes, source) = match (shipped, source.int8) {
            (Some(found), false) => found,
            (Some((queries, _, from)), true) => {
                let (codes, how) = embedded(set, Side::Codes, source, true, progress)?;
                if queries.dim != codes.dim {
                    // The shipped questions come from another model than --model-dir's.
                    return Err(EvalError::DimMismatch {
                        queries: PathBuf::from(format!(
                            "{}.query.f16.npy",
                            stem(&set.path).display()
                        )),
                        query_dim: queries.dim,
                        codes: bitseek_embed::resolve_model_dir(source.model_dir.as_deref())?,
                        code_dim: codes.dim,
                    });
                }
                let from = format!("questions: {from}; functions: {how}");
                (queries, codes, from)
            }
            (None, int8) => {
                let (queries, q_how) = embedded(set, Side::Queries, source, false, progress)?;
                let (codes, c_how) = embedded(set, Side::Codes, source, int8, progress)?;
                let from = if int8 {
                    format!("questions: {q_how}; functions: {c_how}")
                } else {
                    c_how
                };
                (queries, codes, from)
            }
        };
        let n = set.len();
        queries.data.truncate(n * queries.dim);
        codes.data.truncate(n * codes.dim);
        normalize_all(&mut queries, "query")?;
        normalize_all(&mut codes, "code")?;
        Ok(PairVectors {
            queries,
            codes,
            source,
        })
    }
}

impl PairVectors {
    /// Both sides through `head` (questions: its question tower; functions: its code tower), as
    /// `bitseek index` and `bitseek search` embed them with it. `None` when the widths differ.
    pub fn with_head(self, head: &crate::EncoderHead) -> Option<PairVectors> {
        use crate::encoder::Side as Tower;
        if self.queries.dim != head.dim() || self.codes.dim != head.dim() {
            return None;
        }
        let (mut queries, mut codes) = (self.queries, self.codes);
        queries.data = head.apply(Tower::Query, &queries.data);
        codes.data = head.apply(Tower::Doc, &codes.data);
        Some(PairVectors {
            queries,
            codes,
            source: format!("{} + code head {}", self.source, head.id.name),
        })
    }
}

/// Which side of the pairs to embed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Queries,
    Codes,
}

/// The shipped vectors beside the pairs file, if both files exist.
fn shipped(set: &PairSet) -> Result<Option<(Vectors, Vectors, String)>, EvalError> {
    let stem = stem(&set.path);
    let q_path = PathBuf::from(format!("{}.query.f16.npy", stem.display()));
    let c_path = PathBuf::from(format!("{}.code.f16.npy", stem.display()));
    if !(q_path.exists() && c_path.exists()) {
        return Ok(None);
    }
    let q = read_vectors(&q_path)?;
    let c = read_vectors(&c_path)?;
    for (p, v) in [(&q_path, &q), (&c_path, &c)] {
        if v.rows() != set.in_file {
            return Err(EvalError::RowCount {
                vectors: p.clone(),
                rows: v.rows(),
                pairs: set.path.clone(),
                in_file: set.in_file,
            });
        }
    }
    if q.dim != c.dim {
        return Err(EvalError::DimMismatch {
            queries: q_path,
            query_dim: q.dim,
            codes: c_path,
            code_dim: c.dim,
        });
    }
    let source = format!(
        "shipped embeddings {} and {} (cast to f32, L2-normalised)",
        q_path.display(),
        c_path.display()
    );
    Ok(Some((q, c, source)))
}

/// The model's embeddings of one side of the evaluated pairs (`int8`: with its 8-bit dense
/// layers), and where they came from in words.
fn embedded(
    set: &PairSet,
    side: Side,
    source: &VectorSource,
    int8: bool,
    progress: &mut dyn Progress,
) -> Result<(Vectors, String), EvalError> {
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(
        source.model_dir.as_deref(),
    )?)?;
    let adapter = source.adapter.as_ref();
    let embedder = BertEmbedder::load_adapted(
        &dir,
        EmbedOptions {
            int8,
            ..Default::default()
        },
        adapter,
    )?;
    let dim = embedder.dim();
    let why = if let Some(a) = &adapter {
        let how = if int8 { "8-bit dense layers" } else { "f32" };
        format!(
            "adapter {} merged into the weights, {how}",
            a.path().display()
        )
    } else if int8 {
        "--int8: dense layers in 8-bit integers".to_string()
    } else if source.embed {
        "--embed".to_string()
    } else if source.int8 {
        "f32, as bitseek search embeds questions".to_string()
    } else {
        "no shipped .f16.npy embeddings beside the pairs file".to_string()
    };
    let (stage, texts): (&str, Vec<&str>) = match side {
        Side::Queries => (
            "embedding questions",
            set.pairs.iter().map(|p| p.query.as_str()).collect(),
        ),
        Side::Codes => (
            "embedding functions",
            set.pairs.iter().map(|p| p.code.as_str()).collect(),
        ),
    };
    progress.begin(stage, texts.len() as u64);
    let mut data = Vec::with_capacity(texts.len() * dim);
    for chunk in texts.chunks(256) {
        for v in embedder.embed(chunk)? {
            data.extend_from_slice(&v);
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let vectors = Vectors {
        dim,
        data,
        ids: None,
    };
    let how = format!("embedded here with {} ({why})", dir.path().display());
    Ok((vectors, how))
}

/// L2-normalises every row (cosine), refusing non-finite values and zero vectors.
fn normalize_all(v: &mut Vectors, what: &'static str) -> Result<(), EvalError> {
    let data = std::mem::take(&mut v.data);
    v.data = VectorBatch::new(data, v.dim, Metric::Cosine)
        .map_err(|source| EvalError::Vectors { what, source })?
        .into_data();
    Ok(())
}

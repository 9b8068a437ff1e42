//! `bitseek eval-code --ranking`: the ranking `bitseek search` runs ([`crate::hybrid::rank`]),
//! signal by signal, on a pairs file split by package.
//!
//! The packages of the file, sorted by name, alternate between a **tune** part (1st, 3rd, …)
//! and a **held-out** part (2nd, 4th, …); every number is given for both, so a signal tuned on
//! one part is checked on packages it never saw. The pool is always the whole file.
//!
//! Two kinds of question:
//! - **docstring**: each pair's query against the whole pool (MRR, and MRR over the queries that
//!   do not name their function), as in the rest of `eval-code`;
//! - **symbol lookup**: a function's own name, as written (`to_csv`) and as its split words
//!   (`to csv`), embedded with the model; a hit is a top-ranked unit that defines that name (any
//!   function of the pool with that name: the question cannot tell same-named ones apart).

use super::{EvalError, PairSet, PairVectors, Progress};
use crate::hybrid::{
    lexical_words, name_words, rank, Bm25, Names, Question, Ranking, UnitInfo, FUSION_DEPTH,
};
use bitseek_embed::{BertEmbedder, EmbedOptions, Embedder, ModelDir};
use bitseek_index::input::Vectors;
use bitseek_index::retrieval::{
    exact_scores, for_query_batches, metrics, rank_of, top_candidates, RankMetrics,
};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeSet;

/// One way of ranking.
#[derive(Clone, Debug)]
pub enum Method {
    /// Exact float32 cosine over the whole pool.
    Semantic,
    /// BM25 over identifier words alone (all of the question's words).
    Lexical,
    /// The fused ranking as `bitseek search` runs it (the best [`FUSION_DEPTH`] of each leg).
    Fused(Ranking),
}

/// A method with its name in the table.
#[derive(Clone, Debug)]
pub struct Named {
    pub name: String,
    pub method: Method,
}

/// The methods the table shows: semantic only, BM25 only, the fusion before the code-aware
/// signals, each signal added to it alone, the default (`def`: search's ranking for the vectors,
/// [`Ranking::for_model`]), and the default without each signal.
pub fn methods(def: Ranking) -> Vec<Named> {
    let plain = Ranking::PLAIN;
    let m = |name: &str, method: Method| Named {
        name: name.into(),
        method,
    };
    let f = |name: &str, r: Ranking| m(name, Method::Fused(r));
    vec![
        m("semantic only (float32)", Method::Semantic),
        m("bm25 only", Method::Lexical),
        f("fused, before (rrf 60)", plain),
        f(
            "before + stop words",
            Ranking {
                stop_words: true,
                ..plain
            },
        ),
        f(
            "before + definitions first",
            Ranking {
                definitions_first: true,
                ..plain
            },
        ),
        f(
            "before + name leg 0.5",
            Ranking {
                name_weight: 0.5,
                ..plain
            },
        ),
        f(
            "before + name leg 1",
            Ranking {
                name_weight: 1.0,
                ..plain
            },
        ),
        f(
            "before + symbol lexical x2",
            Ranking {
                symbol_lexical_weight: 2.0,
                ..plain
            },
        ),
        f(
            "before + symbol lexical x4",
            Ranking {
                symbol_lexical_weight: 4.0,
                ..plain
            },
        ),
        f("default (after)", def),
        f(
            "default - stop words",
            Ranking {
                stop_words: false,
                ..def
            },
        ),
        f(
            "default - definitions first",
            Ranking {
                definitions_first: false,
                ..def
            },
        ),
        f(
            "default + name leg 1",
            Ranking {
                name_weight: 1.0,
                ..def
            },
        ),
        f(
            "default + symbol lexical x2",
            Ranking {
                symbol_lexical_weight: 2.0,
                ..def
            },
        ),
    ]
}

/// The numbers of one method on one part of the packages.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PartScores {
    /// Docstring questions, all.
    pub docstring: RankMetrics,
    /// Docstring questions that do not name their function.
    pub name_free: RankMetrics,
    /// Share of symbol questions (the name as written) whose first hit defines the name.
    pub symbol_name: f64,
    /// Share of symbol questions (the name's split words) whose first hit defines the name.
    pub symbol_words: f64,
    /// Symbol questions asked of each form.
    pub symbols: usize,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct MethodScores {
    pub method: String,
    /// Tune packages, then held-out packages.
    pub tune: PartScores,
    pub held_out: PartScores,
}

/// The whole table.
#[derive(Clone, Debug, Serialize)]
pub struct RankingEvaluation {
    pub tune_packages: Vec<String>,
    pub held_out_packages: Vec<String>,
    pub rows: Vec<MethodScores>,
}

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct RankingOptions {
    /// Docstring questions are the queries of the first `queries` pairs (a uniform sample; the
    /// pool stays the whole file); `None`: all.
    pub queries: Option<usize>,
    /// Symbol questions are the names of the first `symbols` functions of the file (the rows are
    /// shuffled: a uniform sample); `None`: all.
    pub symbols: Option<usize>,
    /// The model that embeds the symbol questions (`None`: `$BITSEEK_MODEL_DIR` or the cache).
    pub model_dir: Option<std::path::PathBuf>,
    /// The LoRA adapter merged into that model, as for the pairs' vectors.
    pub adapter: Option<bitseek_embed::Adapter>,
    /// The code head whose question tower the symbol questions go through, as the pairs'
    /// questions did.
    pub head: Option<crate::EncoderHead>,
    /// The ranking "default (after)" stands for: search's for these vectors.
    pub default: Ranking,
}

/// The unit name of a pair: the last component of a qualified Python name.
fn unit_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// Runs every [`methods`] row on `set`. Needs each pair's `package` and `name`.
pub fn evaluate_ranking(
    set: &PairSet,
    vectors: &PairVectors,
    options: &RankingOptions,
    progress: &mut dyn Progress,
) -> Result<RankingEvaluation, EvalError> {
    let n = set.len();
    let missing = set
        .pairs
        .iter()
        .position(|p| p.package.is_none() || p.name.is_none());
    if let Some(i) = missing {
        return Err(EvalError::Ranking(format!(
            "{}: line {} has no \"package\" or \"name\"; --ranking splits by package and asks for names",
            set.path.display(),
            i + 1
        )));
    }
    let packages: BTreeSet<&str> = set
        .pairs
        .iter()
        .filter_map(|p| p.package.as_deref())
        .collect();
    let packages: Vec<&str> = packages.into_iter().collect();
    let tune_set: BTreeSet<&str> = packages.iter().step_by(2).copied().collect();
    let is_tune: Vec<bool> = set
        .pairs
        .iter()
        .map(|p| tune_set.contains(p.package.as_deref().unwrap_or("")))
        .collect();
    let full_names: Vec<&str> = set
        .pairs
        .iter()
        .map(|p| p.name.as_deref().unwrap_or(""))
        .collect();
    let names = Names::new(full_names.iter().map(|full| {
        let name = unit_name(full);
        let owner = full.rsplit_once('.').map(|(o, _)| unit_name(o).to_string());
        UnitInfo {
            name: name.to_string(),
            kind: if owner.is_some() {
                "method"
            } else {
                "function"
            }
            .into(),
            owner,
            test: false,
        }
    }));
    let bm25 = Bm25::new(&set.pairs.iter().map(|p| &p.code).collect::<Vec<_>>());
    let methods = methods(options.default);

    // Symbol questions: the first `symbols` functions, each name as written and as split words.
    let s = options.symbols.unwrap_or(n).min(n);
    let sym_name: Vec<&str> = full_names[..s].iter().map(|f| unit_name(f)).collect();
    let sym_texts: Vec<String> = sym_name
        .iter()
        .map(|n| n.to_string())
        .chain(sym_name.iter().map(|n| name_words(n).join(" ")))
        .collect();
    let sym_vectors = embed(&sym_texts, options, progress)?;

    let d = options.queries.unwrap_or(n).min(n);
    progress.begin("ranking", (d + 2 * s) as u64);
    // Docstring questions: rank of the own function under every method.
    let doc_q: Vec<&str> = set.pairs[..d].iter().map(|p| p.query.as_str()).collect();
    let doc_vectors = Vectors {
        dim: vectors.queries.dim,
        data: vectors.queries.data[..d * vectors.queries.dim].to_vec(),
        ids: None,
    };
    let doc_ranks = ranks_of(
        &doc_q,
        &doc_vectors,
        vectors,
        &bm25,
        &names,
        &methods,
        &Check::Own,
        progress,
    );
    // Symbol questions: whether the first hit defines the name.
    let sym_refs: Vec<&str> = sym_texts.iter().map(String::as_str).collect();
    let pool: Vec<&str> = full_names.iter().map(|f| unit_name(f)).collect();
    let sym_hits = if s == 0 {
        Vec::new()
    } else {
        ranks_of(
            &sym_refs,
            &sym_vectors,
            vectors,
            &bm25,
            &names,
            &methods,
            &Check::Defines {
                asked: &sym_name,
                pool: &pool,
            },
            progress,
        )
    };
    progress.finish();

    let name_free: Vec<bool> = set.pairs.iter().map(|p| !p.name_in_query).collect();
    let part = |m: usize, tune: bool| -> PartScores {
        let keep: Vec<bool> = is_tune.iter().map(|&t| t == tune).collect();
        let keep_nf: Vec<bool> = keep.iter().zip(&name_free).map(|(a, b)| *a && *b).collect();
        let (keep_d, keep_nf) = (&keep[..d], &keep_nf[..d]);
        let ranks: Vec<usize> = doc_ranks.iter().map(|r| r[m]).collect();
        let share = |offset: usize| {
            let (mut hit, mut all) = (0usize, 0usize);
            for i in 0..s {
                if keep[i] {
                    all += 1;
                    hit += usize::from(sym_hits[offset + i][m] == 1);
                }
            }
            hit as f64 / all.max(1) as f64
        };
        PartScores {
            docstring: metrics(&ranks, Some(keep_d)),
            name_free: metrics(&ranks, Some(keep_nf)),
            symbol_name: share(0),
            symbol_words: share(s),
            symbols: keep[..s].iter().filter(|&&k| k).count(),
        }
    };
    let rows = methods
        .iter()
        .enumerate()
        .map(|(m, named)| MethodScores {
            method: named.name.clone(),
            tune: part(m, true),
            held_out: part(m, false),
        })
        .collect();
    let (tune_packages, held_out_packages): (Vec<&str>, Vec<&str>) =
        packages.iter().partition(|p| tune_set.contains(*p));
    Ok(RankingEvaluation {
        tune_packages: tune_packages.into_iter().map(String::from).collect(),
        held_out_packages: held_out_packages.into_iter().map(String::from).collect(),
        rows,
    })
}

/// What a question is checked for.
enum Check<'a> {
    /// The rank of the question's own function (question `i` owns row `i`).
    Own,
    /// 1 when the first hit is a function named `asked[i % asked.len()]` (`pool[row]` names each
    /// row), else 2.
    Defines {
        asked: &'a [&'a str],
        pool: &'a [&'a str],
    },
}

/// Ranks each question (`texts[i]` embedded as row `i` of `queries`) against the pool under every
/// method and returns, per question, one number per method ([`Check`]).
#[allow(clippy::too_many_arguments)]
fn ranks_of(
    texts: &[&str],
    queries: &Vectors,
    vectors: &PairVectors,
    bm25: &Bm25,
    names: &Names,
    methods: &[Named],
    check: &Check<'_>,
    progress: &mut dyn Progress,
) -> Vec<Vec<usize>> {
    let codes = &vectors.codes;
    let (n, dim) = (codes.rows(), codes.dim);
    let nq = texts.len();
    let mut out = vec![Vec::new(); nq];
    for_query_batches(nq, n, |range, scores| {
        exact_scores(
            &codes.data,
            dim,
            &queries.data[range.start * dim..range.end * dim],
            scores,
        );
        let per: Vec<Vec<usize>> = scores
            .par_chunks(n)
            .zip(range.clone())
            .map_init(
                || (vec![0f32; n], vec![0f32; n], Vec::new()),
                |(all_words, content, scratch), (row, q)| {
                    let question = Question::new(texts[q]);
                    bm25.scores_words(&question.words, all_words);
                    bm25.scores_words(&question.content_words, content);
                    let sem = top_candidates(row, FUSION_DEPTH, scratch);
                    let lex_top = |lex: &[f32], scratch: &mut Vec<f32>| {
                        let mut top = top_candidates(lex, FUSION_DEPTH, scratch);
                        top.retain(|&r| lex[r as usize] > 0.0);
                        top
                    };
                    let lex_all = lex_top(all_words, scratch);
                    let lex_content = lex_top(content, scratch);
                    methods
                        .iter()
                        .map(|m| match &m.method {
                            Method::Semantic => outcome(check, q, &top1(row), row, Some(row)),
                            Method::Lexical => {
                                outcome(check, q, &top1(all_words), all_words, Some(all_words))
                            }
                            Method::Fused(r) => {
                                let words = lexical_words(&question, r);
                                let lex = if words.len() == question.words.len() {
                                    &lex_all
                                } else {
                                    &lex_content
                                };
                                let list: Vec<u32> =
                                    rank(&question, &sem, lex, names, |w| bm25.idf(w), |_| true, r)
                                        .into_iter()
                                        .map(|x| x.0)
                                        .collect();
                                outcome(check, q, &list, row, None)
                            }
                        })
                        .collect()
                },
            )
            .collect();
        for (q, r) in range.clone().zip(per) {
            out[q] = r;
        }
        progress.advance(range.len() as u64);
    });
    out
}

/// The best row of a score row (ties to the lower row).
fn top1(scores: &[f32]) -> Vec<u32> {
    let mut best = 0usize;
    for (i, s) in scores.iter().enumerate() {
        if s.total_cmp(&scores[best]).is_gt() {
            best = i;
        }
    }
    if scores.is_empty() {
        Vec::new()
    } else {
        vec![best as u32]
    }
}

/// The number question `q` gives under one method ([`Check`]). `whole`: the method's full score
/// row (the own rank is then [`rank_of`] in it); otherwise `list` is the method's ranking, followed
/// by every other row in `semantic` order.
fn outcome(
    check: &Check<'_>,
    q: usize,
    list: &[u32],
    semantic: &[f32],
    whole: Option<&[f32]>,
) -> usize {
    match check {
        Check::Own => match whole {
            Some(scores) => rank_of(scores, q),
            None => list_rank(list, semantic, q),
        },
        Check::Defines { asked, pool } => {
            let first = list.first().map(|&x| x as usize);
            // A whole-row method whose best score is 0 (BM25 without a shared word) finds nothing.
            let found = match whole {
                Some(scores) => first.filter(|&f| scores[f] > 0.0),
                None => first,
            };
            let name = asked[q % asked.len()];
            if found.is_some_and(|f| pool[f] == name) {
                1
            } else {
                2
            }
        }
    }
}

/// The rank of `own` when `list` comes first and every other row follows in `semantic` order.
fn list_rank(list: &[u32], semantic: &[f32], own: usize) -> usize {
    if let Some(p) = list.iter().position(|&r| r as usize == own) {
        return p + 1;
    }
    let s = semantic[own];
    let ahead = list.iter().filter(|&&r| semantic[r as usize] >= s).count();
    list.len() + rank_of(semantic, own) - ahead
}

/// Embeds the symbol questions with the model (and adapter and head) `options` names.
fn embed(
    texts: &[String],
    options: &RankingOptions,
    progress: &mut dyn Progress,
) -> Result<Vectors, EvalError> {
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(
        options.model_dir.as_deref(),
    )?)?;
    let embedder =
        BertEmbedder::load_adapted(&dir, EmbedOptions::default(), options.adapter.as_ref())?;
    let dim = embedder.dim();
    progress.begin("embedding symbol questions", texts.len() as u64);
    let mut data = Vec::with_capacity(texts.len() * dim);
    for chunk in texts.chunks(256) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for v in embedder.embed(&refs)? {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            data.extend(v.iter().map(|x| x / norm));
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    if let Some(head) = &options.head {
        if head.dim() == dim {
            data = head.apply(crate::encoder::Side::Query, &data);
        }
    }
    Ok(Vectors {
        dim,
        data,
        ids: None,
    })
}

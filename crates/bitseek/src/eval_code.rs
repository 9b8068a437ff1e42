//! `bitseek eval-code`: the code-search evaluation of `bitseek_codesearch::eval` on a file of
//! query → function pairs (`../shared/data/codesearch`), printed as a table or one JSON object.

use bitseek_codes::quantizer::QuantizerKind;
use bitseek_codesearch::adapter::resolve_adapter;
use bitseek_codesearch::encoder::resolve_head;
use bitseek_codesearch::eval::{
    evaluate, evaluate_ranking, EvalOptions, Evaluation, PairSet, PairVectors, Progress,
    RankingEvaluation, RankingOptions, VectorSource,
};
use bitseek_codesearch::hybrid::{lexical_weight, Ranking};
use bitseek_codesearch::{AdapterChoice, AdapterId, Encoder, EncoderHead, ModelInfo};
use bitseek_embed::ModelDir;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Pairs file (.jsonl or .jsonl.gz): one {"query", "code", "name_in_query", "lang"} object a line.
    pairs: PathBuf,
    /// Quantizers to evaluate, raw and rescored (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sign,rabitq,residual2,int8"
    )]
    quantizer: Vec<QuantizerKind>,
    /// Rescoring takes 10 × OVERSAMPLE candidates from the codes.
    #[arg(long, default_value_t = 10, value_parser = crate::positive)]
    oversample: usize,
    /// Evaluate only the first N pairs (the rows are in seeded random order: a uniform sample).
    #[arg(long, value_parser = crate::positive)]
    limit: Option<usize>,
    /// Embed the texts with the model even when <stem>.query.f16.npy / <stem>.code.f16.npy exist.
    #[arg(long)]
    embed: bool,
    /// Model directory for --embed (default: $BITSEEK_MODEL_DIR or the cache).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Embed the functions with the model's 8-bit path, as `bitseek index --int8` stores them
    /// (questions stay in f32, as `bitseek search` embeds them: shipped, or embedded with --embed).
    #[arg(long)]
    int8: bool,
    /// The code head both sides go through, as `bitseek index --encoder`: `default` (the head
    /// shipped with bitseek; the shipped vectors are all-MiniLM-L6-v2's, with --embed the model
    /// must be the one it was trained on, else no head), `none`, or a head file. --ranking puts
    /// its symbol questions through the head's question tower too.
    #[arg(long, default_value = "default", value_name = "default|none|FILE")]
    encoder: Encoder,
    /// The LoRA adapter merged into the model's weights, as `bitseek index --adapter`: `default`
    /// (with --embed, the one `bitseek index` would use; the shipped vectors are the model's
    /// alone), `builtin` (the adapter shipped with bitseek), `none`, or an adapter file
    /// (scripts/train_adapter.py). An adapter embeds both sides through it (implies --embed), and
    /// `--encoder default` then takes the head trained on those vectors, if one ships.
    #[arg(
        long,
        default_value = "default",
        value_name = "default|none|builtin|FILE"
    )]
    adapter: AdapterChoice,
    /// Also evaluate BM25 over identifiers and its reciprocal-rank fusion (k = 60) with float32.
    #[arg(long)]
    hybrid: bool,
    /// With --hybrid or --ranking: the lexical leg's weight against the semantic leg's 1 in the
    /// fusion as `bitseek search` runs it (default: search's weight for these vectors, known when they
    /// are embedded here; 1 for shipped vectors).
    #[arg(long, value_name = "W")]
    lexical_weight: Option<f32>,
    /// Evaluate the ranking `bitseek search` runs signal by signal instead (semantic only, BM25
    /// only, fused before and after, each signal on and off), on docstring questions and on
    /// symbol lookup (each function's name, as written and as split words, embedded with the
    /// model, adapter and head of the pairs' vectors), split into tune and held-out packages.
    /// "default (after)" is search's ranking for those vectors (its lexical weight: see
    /// --lexical-weight). Needs "package" and "name" in the pairs.
    #[arg(long)]
    ranking: bool,
    /// With --ranking: ask the docstring questions of the first N pairs only (the pool stays the
    /// whole file).
    #[arg(long, value_parser = crate::positive, requires = "ranking")]
    queries: Option<usize>,
    /// With --ranking: ask the names of the first N functions as symbol questions (default: all).
    #[arg(long, requires = "ranking")]
    symbols: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let set = PairSet::read(&a.pairs, a.limit)?;
    let adapter = match (&a.adapter, a.embed) {
        (AdapterChoice::None, _) | (AdapterChoice::Default, false) => None,
        (choice, _) => resolve_adapter(choice, &base_model(&a)?)?,
    };
    let source = VectorSource {
        embed: a.embed,
        model_dir: a.model_dir.clone(),
        int8: a.int8,
        adapter: adapter.as_ref().map(|x| x.0.clone()),
    };
    let adapter_id = adapter.map(|x| x.1);
    let mut bar = Bar::new(a.json);
    let vectors = PairVectors::load(&set, &source, &mut bar)?;
    let head = eval_head(&a, vectors.queries.dim, adapter_id.clone())?;
    // The vectors' identity as an index would record it (shipped vectors: the installed
    // model's), for search's fusion weight.
    let search_weight = base_model(&a).map_or(1.0, |info| {
        lexical_weight(&ModelInfo {
            dim: vectors.queries.dim,
            adapter: adapter_id,
            encoder: head.as_ref().map(|h| h.id.clone()),
            ..info
        })
    });
    let vectors = match &head {
        Some(h) => vectors.with_head(h).expect("the head's width was checked"),
        None => vectors,
    };
    if a.ranking {
        // Symbol questions are embedded as the pairs' questions were: the shipped vectors are
        // the model's alone, so without --embed the model embeds them without an adapter.
        let options = RankingOptions {
            queries: a.queries,
            symbols: a.symbols,
            model_dir: a.model_dir.clone(),
            adapter: source.adapter.clone(),
            head,
            default: Ranking {
                lexical_weight: a.lexical_weight.unwrap_or(search_weight),
                ..Ranking::default()
            },
        };
        let evaluation = evaluate_ranking(&set, &vectors, &options, &mut bar)?;
        return report_ranking(&a, &set, &vectors.source, &evaluation);
    }
    let options = EvalOptions {
        quantizers: a.quantizer.clone(),
        oversample: a.oversample,
        hybrid: a.hybrid,
        lexical_weight: a.lexical_weight.unwrap_or(search_weight),
    };
    let evaluation = evaluate(&set, &vectors, &options, &mut bar);
    report(&a, &set, &vectors.source, &evaluation)
}

/// The identity of the model in --model-dir (its width is set once it is loaded).
fn base_model(a: &Args) -> anyhow::Result<ModelInfo> {
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(a.model_dir.as_deref())?)?;
    Ok(ModelInfo::of(&dir, 0)?)
}

/// The head `--encoder` names for vectors of width `dim`: with --embed or an adapter, checked
/// against the model and adapter like `bitseek index`; on shipped vectors (all-MiniLM-L6-v2's),
/// by width.
fn eval_head(
    a: &Args,
    dim: usize,
    adapter: Option<AdapterId>,
) -> anyhow::Result<Option<EncoderHead>> {
    if a.embed || adapter.is_some() {
        let info = ModelInfo {
            dim,
            adapter,
            ..base_model(a)?
        };
        return Ok(resolve_head(&a.encoder, &info)?);
    }
    let head = match &a.encoder {
        Encoder::None => return Ok(None),
        Encoder::Default => EncoderHead::builtin().map_err(anyhow::Error::msg)?,
        Encoder::File(p) => EncoderHead::load(p)?,
    };
    if head.dim() != dim {
        anyhow::ensure!(
            a.encoder == Encoder::Default,
            "the code head was trained on {}-dimensional vectors, the pairs' vectors have {dim}",
            head.dim()
        );
        return Ok(None);
    }
    Ok(Some(head))
}

/// A progress bar per stage on a terminal (none under `--json`).
struct Bar {
    json: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Bar {
    fn new(json: bool) -> Bar {
        Bar { json, bar: None }
    }
}

impl Progress for Bar {
    fn begin(&mut self, stage: &str, total: u64) {
        self.finish();
        self.bar = Some(crate::progress(total, stage, self.json));
    }

    fn advance(&mut self, steps: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(steps);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Prints the evaluation: a table, or one JSON object under `--json`.
fn report(a: &Args, set: &PairSet, source: &str, evaluation: &Evaluation) -> anyhow::Result<()> {
    let (lang, n, in_file) = (&set.lang, set.len(), set.in_file);
    let (rows, candidates) = (&evaluation.rows, evaluation.candidates);
    let float_mrr = rows[0].all.mrr;
    let float_nf = rows[0].name_free.mrr;
    let name_free = rows[0].name_free.queries;
    if a.json {
        let methods: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.method,
                    "bytes_per_vector": r.bytes_per_vector,
                    "all": r.all,
                    "name_free": r.name_free,
                    "mrr_vs_float32": r.all.mrr / float_mrr,
                    "name_free_mrr_vs_float32": r.name_free.mrr / float_nf,
                    "seconds": r.seconds,
                })
            })
            .collect();
        let out = serde_json::json!({
            "file": a.pairs,
            "lang": lang,
            "rows": n,
            "rows_in_file": in_file,
            "name_free_queries": name_free,
            "vectors": source,
            "candidates": candidates,
            "ties": "count against",
            "methods": methods,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} ({lang}): {n} pairs{} — every query ranks all {n} functions; name-free subset: {name_free} queries",
        a.pairs.display(),
        if n < in_file {
            format!(" (first {n} of {in_file})")
        } else {
            String::new()
        }
    );
    println!("vectors: {source}");
    println!(
        "{:<34} {:>11} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>8} {:>7}",
        "method",
        "bytes/vec",
        "MRR",
        "R@1",
        "R@10",
        "nf MRR",
        "nf R@1",
        "nf R@10",
        "%f32 MRR",
        "secs"
    );
    for r in rows {
        println!(
            "{:<34} {:>11} {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.2}% {:>7}",
            r.method,
            r.bytes_per_vector,
            r.all.mrr,
            r.all.recall_at_1,
            r.all.recall_at_10,
            r.name_free.mrr,
            r.name_free.recall_at_1,
            r.name_free.recall_at_10,
            100.0 * r.all.mrr / float_mrr,
            r.seconds.map_or("\"".to_string(), |s| format!("{s:.1}"))
        );
    }
    Ok(())
}

/// Prints the `--ranking` table: per method, the tune and the held-out packages' docstring MRR,
/// name-free MRR and symbol-lookup shares.
fn report_ranking(
    a: &Args,
    set: &PairSet,
    source: &str,
    evaluation: &RankingEvaluation,
) -> anyhow::Result<()> {
    if a.json {
        let out = serde_json::json!({
            "file": a.pairs,
            "lang": set.lang,
            "rows_in_file": set.in_file,
            "docstring_questions": a.queries.unwrap_or(set.len()).min(set.len()),
            "vectors": source,
            "evaluation": evaluation,
        });
        println!("{out}");
        return Ok(());
    }
    let first = &evaluation.rows[0];
    println!(
        "{} ({}): pool {} functions; docstring questions: {} tune + {} held-out; symbol questions: {} tune + {} held-out names, each as written and as split words",
        a.pairs.display(),
        set.lang,
        set.len(),
        first.tune.docstring.queries,
        first.held_out.docstring.queries,
        first.tune.symbols,
        first.held_out.symbols,
    );
    println!("vectors: {source}");
    println!("tune packages: {}", evaluation.tune_packages.join(", "));
    println!(
        "held-out packages: {}",
        evaluation.held_out_packages.join(", ")
    );
    println!(
        "{:<30} | {:>7} {:>7} {:>6} {:>6} | {:>7} {:>7} {:>6} {:>6} {:>7}",
        "method (tune | held-out)",
        "MRR",
        "nf MRR",
        "sym",
        "words",
        "MRR",
        "nf MRR",
        "sym",
        "words",
        "x sem"
    );
    let sem = first.held_out.docstring.mrr;
    for r in &evaluation.rows {
        let (t, h) = (&r.tune, &r.held_out);
        println!(
            "{:<30} | {:>7.4} {:>7.4} {:>6.3} {:>6.3} | {:>7.4} {:>7.4} {:>6.3} {:>6.3} {:>6.3}x",
            r.method,
            t.docstring.mrr,
            t.name_free.mrr,
            t.symbol_name,
            t.symbol_words,
            h.docstring.mrr,
            h.name_free.mrr,
            h.symbol_name,
            h.symbol_words,
            h.docstring.mrr / sem,
        );
    }
    println!("MRR: docstring questions; nf: those not naming their function; sym / words: share of names (as written / split words) whose first hit defines the name; x sem: held-out MRR over semantic only");
    Ok(())
}

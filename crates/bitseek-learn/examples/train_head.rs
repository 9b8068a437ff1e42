//! Trains the code-search head ([`bitseek_learn::head`]) on pairs embedded by the frozen model
//! and applies it to held-out vectors, for the evaluation with `bitseek eval-code`:
//!
//!     cargo run --release -p bitseek-learn --example train_head -- \
//!         --train train.npz --val val.npz [--augment racs [--ops binary]] [--mined negs.txt] \
//!         --apply query:test.query.f32.npy:out/test.query.npy --apply doc:... \
//!         [--save code-head.safetensors]
//!
//! `--save` writes the head file code search loads (`bitseek_codesearch::encoder`): f16 weights,
//! the base model's name and fingerprint (`--model-dir`, default: the installed model), and how it
//! was trained.
//! `--mined` adds BM25-mined hard negatives (the `mine_negatives` example writes the file);
//! `--eval NAME:pairs.npz` prints the trained head's MRR, R@1 and R@10 on more pairs (whole-set
//! float ranking), for the ablations of `bench/head_ablation.sh`.
//! `scripts/head_experiment.sh` runs the whole comparison.

use bitseek_index::input::{read_vectors, write_npy_f32};
use bitseek_learn::augment::parse_ops;
use bitseek_learn::data::read_pairs_npz;
use bitseek_learn::head::{float_ranks, train_head_mined, HeadConfig, Side};
use bitseek_learn::loss::LossParams;
use bitseek_learn::Augment;
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Training pairs (.npz with arrays `query`, `doc`).
    #[arg(long)]
    train: PathBuf,
    /// Validation pairs (other packages than --train).
    #[arg(long)]
    val: PathBuf,
    #[arg(long, default_value = "none")]
    augment: Augment,
    /// RACS operations each augmented copy picks from: all, or a comma-separated list of linear,
    /// interpolation, extrapolation, binary, gaussian, dropout (with --augment racs[:N]).
    #[arg(long, default_value = "all")]
    ops: String,
    /// Mined hard negatives: one line per training pair, the training rows (0-based, space
    /// separated) whose documents are negatives for its question (`mine_negatives` example).
    #[arg(long)]
    mined: Option<PathBuf>,
    /// Mined negatives drawn per pair and step.
    #[arg(long, default_value_t = 1)]
    mined_per_pair: usize,
    /// NAME:pairs.npz — report the trained head's MRR, R@1, R@10 on these pairs.
    #[arg(long)]
    eval: Vec<String>,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.05)]
    temperature: f32,
    /// Hardest in-batch negatives per row (default: all).
    #[arg(long)]
    hard_negatives: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// SIDE:IN.npy:OUT.npy — apply the trained query or doc tower to IN, write OUT (float32).
    #[arg(long)]
    apply: Vec<String>,
    /// Write the trained head here (safetensors, f16) for `bitseek index --encoder FILE`, or as
    /// the built-in head (crates/bitseek-codesearch/assets/code-head.safetensors).
    #[arg(long)]
    save: Option<PathBuf>,
    /// The model the training vectors were embedded with (recorded in the head file).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// The LoRA adapter that was merged into that model when the training vectors were embedded
    /// (`bitseek index --adapter`: none, builtin or a file): the head is then recorded as made
    /// for the adapted vectors, and code search uses it only with that adapter.
    #[arg(long, default_value = "none", value_name = "none|builtin|FILE")]
    adapter: bitseek_codesearch::AdapterChoice,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let train = read_pairs_npz(&a.train)?;
    let val = read_pairs_npz(&a.val)?;
    let ops = parse_ops(&a.ops).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        a.ops == "all" || matches!(a.augment, Augment::Racs { .. }),
        "--ops {} selects RACS operations, but --augment is none; add --augment racs",
        a.ops
    );
    let mined = match &a.mined {
        Some(p) => read_mined(p)?,
        None => Vec::new(),
    };
    let evals = a
        .eval
        .iter()
        .map(|spec| {
            let (name, path) = spec
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--eval {spec:?}: expected NAME:pairs.npz"))?;
            Ok((
                name.to_string(),
                read_pairs_npz(std::path::Path::new(path))?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = HeadConfig {
        hidden: a.hidden,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        augment: a.augment,
        ops,
        mined_per_pair: a.mined_per_pair,
        loss: LossParams {
            temperature: a.temperature,
            hard_negatives: a.hard_negatives.unwrap_or(usize::MAX),
        },
        seed: a.seed,
        ..Default::default()
    };
    let t = Instant::now();
    let out = train_head_mined(&train, &val, &mined, &cfg, &mut |e, loss, mrr, s| {
        eprintln!("epoch {e}: loss {loss:.4}, val MRR {mrr:.4} ({s:.1} s)")
    })?;
    eprintln!(
        "trained on {} pairs in {:.1} s: val MRR {:.4} -> {:.4} (epoch {})",
        train.len(),
        t.elapsed().as_secs_f64(),
        out.start_val_mrr,
        out.best_val_mrr,
        out.best_epoch
    );
    for spec in &a.apply {
        let parts: Vec<&str> = spec.splitn(3, ':').collect();
        let [side, input, output] = parts[..] else {
            anyhow::bail!("--apply {spec:?}: expected SIDE:IN.npy:OUT.npy");
        };
        let side = match side {
            "query" => Side::Query,
            "doc" => Side::Doc,
            _ => anyhow::bail!("--apply {spec:?}: SIDE is query or doc"),
        };
        let v = read_vectors(std::path::Path::new(input))?;
        let mut rows = v.data.clone();
        for r in rows.chunks_mut(v.dim) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= n.max(1e-12));
        }
        let y = out.head.apply(side, &rows);
        write_npy_f32(std::path::Path::new(output), v.rows(), v.dim, &y)?;
    }
    if let Some(path) = &a.save {
        let (_, info) =
            bitseek_codesearch::load_adapted_model(a.model_dir.as_deref(), false, &a.adapter)?;
        anyhow::ensure!(
            info.dim == train.dim,
            "the model in --model-dir makes {}-dimensional vectors, the training pairs have {}",
            info.dim,
            train.dim
        );
        let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let training = serde_json::json!({
            "method": "InfoNCE on frozen-model embeddings of (docstring, function) pairs",
            "train": name(&a.train), "train_pairs": train.len(),
            "val": name(&a.val), "val_pairs": val.len(),
            "augment": format!("{:?}", a.augment), "ops": a.ops,
            "mined": a.mined.as_ref().and_then(name), "mined_per_pair": a.mined_per_pair,
            "hidden": a.hidden, "epochs": a.epochs,
            "batch": a.batch, "lr": a.lr, "temperature": a.temperature,
            "hard_negatives": a.hard_negatives, "seed": a.seed,
            "best_epoch": out.best_epoch, "start_val_mrr": out.start_val_mrr,
            "best_val_mrr": out.best_val_mrr,
            "adapter": info.adapter.as_ref().map(|x| &x.name),
        });
        let meta = bitseek_codesearch::encoder::HeadMeta {
            base_name: info.name.clone(),
            base_fingerprint: info.vectors_fingerprint(),
            training: training.to_string(),
        };
        let bytes = bitseek_codesearch::encoder::head_bytes(&out.head.query, &out.head.doc, &meta)
            .map_err(anyhow::Error::msg)?;
        std::fs::write(path, &bytes)?;
        eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
    }
    let mut report = serde_json::json!({
        "start_val_mrr": out.start_val_mrr, "best_val_mrr": out.best_val_mrr,
        "best_epoch": out.best_epoch, "seconds": t.elapsed().as_secs_f64(),
    });
    for (name, pairs) in &evals {
        let ranks = float_ranks(
            &out.head.apply(Side::Query, &pairs.query),
            &out.head.apply(Side::Doc, &pairs.doc),
            pairs.dim,
        );
        let n = ranks.len().max(1) as f64;
        let share = |k: usize| ranks.iter().filter(|&&r| r <= k).count() as f64 / n;
        report[name] = serde_json::json!({
            "pairs": ranks.len(),
            "mrr": ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / n,
            "r1": share(1), "r10": share(10),
        });
    }
    println!("{report}");
    Ok(())
}

/// The `--mined` file: line `i` lists the training rows mined as negatives for pair `i`.
fn read_mined(path: &std::path::Path) -> anyhow::Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("--mined {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            line.split_whitespace()
                .map(|w| {
                    w.parse::<u32>().map_err(|_| {
                        anyhow::anyhow!(
                            "--mined {} line {}: {w:?} is not a row number; the file lists rows of the training pairs",
                            path.display(),
                            i + 1
                        )
                    })
                })
                .collect()
        })
        .collect()
}

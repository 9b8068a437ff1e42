//! The learned-codes table on the code-search dev sets: split by package into train, early-stop
//! validation and test (no package in two splits), train each learned configuration for several
//! seeds, and rank every test function for every test query (CodeSearchNet-style, ties count
//! against), next to float32 and the training-free quantizers at their bytes per vector.
//!
//! `cargo run --release -p bitseek-learn --example codesearch -- DATA/dev-rust.jsonl.gz`
//! (see crates/bitseek-learn/README.md and bench/learned.sh).

use anyhow::{bail, Context};
use bitseek_codes::quantizer::{FitOptions, Learned, Quantizer, QuantizerKind, QueryMode, Sign};
use bitseek_index::retrieval::{self, RankMetrics};
use bitseek_learn::data::neighbours;
use bitseek_learn::data::Pairs;
use bitseek_learn::eval::{code_ranks, cross_ranks, encode_all, float_ranks};
use bitseek_learn::ksh::{Ksh, KshParams};
use bitseek_learn::train::{train, val_mrr, Event, TrainConfig, TrainData};
use bitseek_learn::{Augment, Estimator, Norm};
use clap::Parser;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// dev-<lang>.jsonl.gz; the embeddings <stem>.query.f16.npy / <stem>.code.f16.npy lie beside it.
    pairs: PathBuf,
    /// Seeds per learned row.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Rows to run (comma-separated): base, learned1, learned2, planes2 (learned 2-bit with
    /// learned plane weights, not in the default set), racs, reste, biper, batchnorm, neighbors,
    /// ksh, compat.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "base,learned1,learned2,racs,reste,biper,batchnorm,neighbors,ksh,compat"
    )]
    rows: Vec<String>,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    /// Hardest in-batch negatives per row.
    #[arg(long, default_value_t = 5)]
    negatives: usize,
    /// RACS copies for the augmentation row.
    #[arg(long, default_value_t = 2)]
    copies: usize,
    /// Use at most this many training pairs (the split's first ones).
    #[arg(long)]
    max_train: Option<usize>,
    /// Fraction of rows (by package) held out for the test ranking.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Only write the split (DIR/train.npz, DIR/val.npz, DIR/test-queries.npy, DIR/test-docs.npy)
    /// for `bitseek train` / `bitseek build`, and exit.
    #[arg(long)]
    write_split: Option<PathBuf>,
}

struct Split {
    train: Pairs,
    val: Pairs,
    test: Pairs,
    test_name_free: Vec<bool>,
    packages: [Vec<String>; 3],
}

fn read_meta(path: &Path) -> anyhow::Result<Vec<(String, bool)>> {
    let f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let r = BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let mut out = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        let pkg = v["package"]
            .as_str()
            .context("no package field")?
            .to_string();
        let nq = v["name_in_query"]
            .as_bool()
            .context("no name_in_query field")?;
        out.push((pkg, nq));
    }
    Ok(out)
}

fn split(args: &Args) -> anyhow::Result<Split> {
    let meta = read_meta(&args.pairs)?;
    let name = args
        .pairs
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".jsonl.gz", "");
    let dir = args.pairs.parent().unwrap_or(Path::new("."));
    let q = bitseek_index::input::read_vectors(&dir.join(format!("{name}.query.f16.npy")))?;
    let c = bitseek_index::input::read_vectors(&dir.join(format!("{name}.code.f16.npy")))?;
    if q.rows() != meta.len() || c.rows() != meta.len() {
        bail!("embeddings and pairs differ in rows");
    }
    let all = Pairs::new(q.dim, q.data, c.data).map_err(anyhow::Error::msg)?;
    let mut pkgs: Vec<String> = meta.iter().map(|m| m.0.clone()).collect();
    pkgs.sort();
    pkgs.dedup();
    pkgs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(2026));
    let count = |p: &str| meta.iter().filter(|m| m.0 == p).count();
    let n = meta.len() as f64;
    let mut sets: [Vec<String>; 3] = Default::default();
    let (mut test_rows, mut val_rows) = (0usize, 0usize);
    for p in pkgs {
        let k = count(&p);
        if (test_rows as f64) < args.test_fraction * n {
            test_rows += k;
            sets[2].push(p);
        } else if (val_rows as f64) < 0.1 * n {
            val_rows += k;
            sets[1].push(p);
        } else {
            sets[0].push(p);
        }
    }
    let rows_of = |set: &Vec<String>| -> Vec<usize> {
        (0..meta.len())
            .filter(|&i| set.contains(&meta[i].0))
            .collect()
    };
    let mut train_rows = rows_of(&sets[0]);
    if let Some(m) = args.max_train {
        train_rows.truncate(m);
    }
    let test_rows = rows_of(&sets[2]);
    let mut train = all.select(&train_rows);
    train.ids = (0..train.len() as u64).collect();
    let mut val = all.select(&rows_of(&sets[1]));
    val.ids = (0..val.len() as u64).collect();
    let test = all.select(&test_rows);
    let test_name_free = test_rows.iter().map(|&i| !meta[i].1).collect();
    Ok(Split {
        train,
        val,
        test,
        test_name_free,
        packages: sets,
    })
}

/// One measured row: a label, bytes/vector, and per-seed (all, name-free) metrics.
struct Row {
    method: String,
    bytes: String,
    runs: Vec<(RankMetrics, RankMetrics)>,
    train_seconds: Vec<f64>,
}

fn stat(xs: &[f64]) -> String {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return format!("{mean:.4}");
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    format!("{mean:.4} ± {sd:.4}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let s = split(&args)?;
    let d = s.test.dim;
    eprintln!(
        "split by package: train {} pairs ({} packages), early-stop validation {} ({}), test {} ({}): {:?}",
        s.train.len(),
        s.packages[0].len(),
        s.val.len(),
        s.packages[1].len(),
        s.test.len(),
        s.packages[2].len(),
        s.packages[2]
    );
    if let Some(dir) = &args.write_split {
        use bitseek_learn::data::write_pairs_npz;
        std::fs::create_dir_all(dir)?;
        write_pairs_npz(&dir.join("train.npz"), &s.train.query, &s.train.doc, d)?;
        write_pairs_npz(&dir.join("val.npz"), &s.val.query, &s.val.doc, d)?;
        let n = s.test.len();
        bitseek_index::input::write_npy_f32(&dir.join("test-queries.npy"), n, d, &s.test.query)?;
        bitseek_index::input::write_npy_f32(&dir.join("test-docs.npy"), n, d, &s.test.doc)?;
        eprintln!("wrote the split to {}", dir.display());
        return Ok(());
    }
    let nf = &s.test_name_free;
    let metrics = |ranks: &[usize]| {
        (
            retrieval::metrics(ranks, None),
            retrieval::metrics(ranks, Some(nf)),
        )
    };
    let mut rows: Vec<Row> = Vec::new();
    let want = |r: &str| args.rows.iter().any(|x| x == r);
    let (tq, td) = (&s.test.query, &s.test.doc);
    if want("base") {
        rows.push(Row {
            method: "float32 exact".into(),
            bytes: (4 * d).to_string(),
            runs: vec![metrics(&float_ranks(tq, td, d))],
            train_seconds: vec![],
        });
        for kind in ["sign", "rabitq", "residual2"] {
            let k: QuantizerKind = kind.parse()?;
            let q = Quantizer::fit(k, d, td, FitOptions::default());
            let bytes = encode_all(&q, &td[..8 * d], d).bytes_per_vector();
            rows.push(Row {
                method: format!("{kind} (training-free, asymmetric default query)"),
                bytes: bytes.to_string(),
                runs: vec![metrics(&code_ranks(
                    &q,
                    tq,
                    td,
                    d,
                    QueryMode::Asymmetric,
                    None,
                ))],
                train_seconds: vec![],
            });
        }
    }
    // Every learned row and the compatibility runs share these; each row sets what it varies.
    let base = TrainConfig {
        hidden: args.hidden,
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        loss: bitseek_learn::loss::LossParams {
            hard_negatives: args.negatives,
            ..Default::default()
        },
        ..Default::default()
    };
    let configs: Vec<(&str, TrainConfig)> = [
        (
            "learned1",
            "learned 1-bit (m=384, ste)",
            1,
            Estimator::Ste,
            Augment::None,
            Norm::None,
        ),
        (
            "learned2",
            "learned 2-bit (m=384, ste)",
            2,
            Estimator::Ste,
            Augment::None,
            Norm::None,
        ),
        (
            "planes2",
            "learned 2-bit (m=384, ste), learned plane weights",
            2,
            Estimator::Ste,
            Augment::None,
            Norm::None,
        ),
        (
            "racs",
            "learned 2-bit + racs",
            2,
            Estimator::Ste,
            Augment::Racs {
                copies: args.copies,
            },
            Norm::None,
        ),
        (
            "reste",
            "learned 2-bit (reste)",
            2,
            Estimator::Reste,
            Augment::None,
            Norm::None,
        ),
        (
            "biper",
            "learned 2-bit (biper)",
            2,
            Estimator::Biper,
            Augment::None,
            Norm::None,
        ),
        (
            "batchnorm",
            "learned 2-bit, BatchNorm in the MLPs",
            2,
            Estimator::Ste,
            Augment::None,
            Norm::Batch,
        ),
        (
            "neighbors",
            "learned 2-bit, neighbors mode (no labels)",
            2,
            Estimator::Ste,
            Augment::None,
            Norm::None,
        ),
    ]
    .into_iter()
    .filter(|c| want(c.0))
    .map(|(_, label, bits, estimator, augment, norm)| {
        (
            label,
            TrainConfig {
                bits,
                estimator,
                augment,
                norm,
                plane_scales: label.contains("plane weights"),
                ..base
            },
        )
    })
    .collect();
    let data = TrainData::Pairs(s.train.clone());
    // Neighbors mode sees the training packages' vectors without their pairing: queries and
    // functions pooled, positives their exact float top-10; it early-stops on each validation
    // vector's nearest neighbour, so no label is used anywhere.
    let unlabelled = if want("neighbors") {
        let pooled = [s.train.query.as_slice(), s.train.doc.as_slice()].concat();
        let top10 = neighbours(&pooled, d, 10);
        let val_pooled = [s.val.query.as_slice(), s.val.doc.as_slice()].concat();
        let nearest = neighbours(&val_pooled, d, 1);
        let (mut vq, mut vd) = (Vec::new(), Vec::new());
        for (i, l) in nearest.iter().enumerate() {
            if let Some(&j) = l.first() {
                vq.extend_from_slice(&val_pooled[i * d..(i + 1) * d]);
                vd.extend_from_slice(&val_pooled[j as usize * d..(j as usize + 1) * d]);
            }
        }
        let mut vp = Pairs::new(d, vq, vd).map_err(anyhow::Error::msg)?;
        // A random 4,000 of them, not the first (queries only).
        let mut rows: Vec<usize> = (0..vp.len()).collect();
        rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
        rows.truncate(4000);
        vp = vp.select(&rows);
        vp.ids = (0..vp.len() as u64).collect();
        Some((
            TrainData::Neighbors {
                dim: d,
                data: pooled,
                neighbours: top10,
            },
            vp,
        ))
    } else {
        None
    };
    for (label, cfg) in &configs {
        let neighbors_row = label.contains("neighbors");
        let (data, val) = match (&unlabelled, neighbors_row) {
            (Some((u, vp)), true) => (u, vp),
            _ => (&data, &s.val),
        };
        let mut sym = Row {
            method: format!("{label}, symmetric"),
            bytes: String::new(),
            runs: vec![],
            train_seconds: vec![],
        };
        let mut asym = Row {
            method: format!("{label}, asymmetric 8-bit query"),
            bytes: String::new(),
            runs: vec![],
            train_seconds: vec![],
        };
        for seed in 0..args.seeds {
            let cfg = TrainConfig {
                augment: cfg.augment,
                seed,
                ..*cfg
            };
            let t = Instant::now();
            let trained = train(data, val, &cfg, None, &mut |e| {
                if let Event::Epoch(e) = e {
                    eprintln!(
                        "  {label} seed {seed} epoch {}: loss {:.4}, val MRR {:.4} ({:.0} s)",
                        e.epoch, e.loss, e.val_mrr, e.seconds
                    );
                }
            })?;
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "  {label} seed {seed}: start val MRR {:.4} → best {:.4} at epoch {} ({secs:.0} s)",
                trained.start_val_mrr, trained.best_val_mrr, trained.best_epoch
            );
            if !trained.encoder.plane_scales.is_empty() {
                eprintln!(
                    "  {label} seed {seed}: learned plane weights {:?} (start {:?})",
                    trained.encoder.plane_scales,
                    (0..cfg.bits)
                        .map(|k| 0.5f32.powi(k as i32))
                        .collect::<Vec<_>>()
                );
            }
            let q = Quantizer::Learned(Box::new(trained.encoder));
            let bytes = encode_all(&q, &td[..8 * d], d)
                .bytes_per_vector()
                .to_string();
            sym.bytes = bytes.clone();
            asym.bytes = bytes;
            sym.runs.push(metrics(&code_ranks(
                &q,
                tq,
                td,
                d,
                QueryMode::Symmetric,
                None,
            )));
            asym.runs.push(metrics(&code_ranks(
                &q,
                tq,
                td,
                d,
                QueryMode::Asymmetric,
                Some(8),
            )));
            sym.train_seconds.push(secs);
        }
        rows.push(sym);
        rows.push(asym);
    }
    if want("ksh") {
        let mut row = Row {
            method: "KSH 384 bits (no backprop)".into(),
            bytes: "48".into(),
            runs: vec![],
            train_seconds: vec![],
        };
        let scorer = Quantizer::Sign(Sign::from_mean(vec![0.0; 384]));
        for seed in 0..args.seeds {
            let t = Instant::now();
            let ksh = Ksh::train(
                &s.train,
                &KshParams {
                    seed,
                    ..Default::default()
                },
            );
            row.train_seconds.push(t.elapsed().as_secs_f64());
            let codes = ksh.encode(td);
            let qcs: Vec<_> = tq.chunks_exact(d).map(|q| ksh.encode_query(q)).collect();
            let n = s.test.len();
            let ranks = retrieval::own_ranks(n, n, |range, scores| {
                retrieval::code_scores(&scorer, &codes.as_ref(), &qcs[range], scores)
            });
            row.runs.push(metrics(&ranks));
        }
        rows.push(row);
    }
    let mut compat_lines = Vec::new();
    if want("compat") {
        let run = |data: &TrainData, seed: u64, old: Option<&Learned>| {
            train(
                data,
                &s.val,
                &TrainConfig { seed, ..base },
                old,
                &mut |_| {},
            )
            .map(|t| t.encoder)
        };
        // As in BCT, the old version learned from less: the first quarter of the training rows.
        let quarter: Vec<usize> = (0..s.train.len() / 4).collect();
        let old = run(&TrainData::Pairs(s.train.select(&quarter)), 100, None)?;
        let indep = run(&data, 101, None)?;
        let compat = run(&data, 101, Some(&old))?;
        let qo = Quantizer::Learned(Box::new(old.clone()));
        let qi = Quantizer::Learned(Box::new(indep));
        compat_lines.push(format!(
            "old version trained on {} of the {} training pairs",
            quarter.len(),
            s.train.len()
        ));
        let qc = Quantizer::Learned(Box::new(compat.clone()));
        let m = |r: Vec<usize>| retrieval::metrics(&r, None).mrr;
        compat_lines.push(format!(
            "old → old (old version alone): MRR {:.4}",
            m(code_ranks(&qo, tq, td, d, QueryMode::Symmetric, None))
        ));
        compat_lines.push(format!(
            "independent new → new: MRR {:.4}",
            m(code_ranks(&qi, tq, td, d, QueryMode::Symmetric, None))
        ));
        compat_lines.push(format!(
            "independent new query → old docs: MRR {:.4}",
            m(cross_ranks(&qi, &qo, tq, td, d, QueryMode::Symmetric, None))
        ));
        compat_lines.push(format!(
            "compatible new query → old docs: MRR {:.4}",
            m(cross_ranks(&qc, &qo, tq, td, d, QueryMode::Symmetric, None))
        ));
        compat_lines.push(format!(
            "compatible new → new: MRR {:.4}",
            m(code_ranks(&qc, tq, td, d, QueryMode::Symmetric, None))
        ));
        compat_lines.push(format!(
            "(early-stop validation MRR of compatible new → new: {:.4})",
            val_mrr(&compat, &s.val, usize::MAX)
        ));
    }
    let float_mrr = rows
        .first()
        .filter(|r| r.method.starts_with("float32"))
        .map(|r| r.runs[0].0.mrr);
    println!(
        "{}: test = {} queries × {} functions ({} packages, name-free subset {} queries); train {} pairs; seeds {}",
        args.pairs.display(),
        s.test.len(),
        s.test.len(),
        s.packages[2].len(),
        nf.iter().filter(|&&x| x).count(),
        s.train.len(),
        args.seeds
    );
    println!("| method | bytes/vector | MRR | R@1 | R@10 | name-free MRR | nf R@1 | nf R@10 | % float32 MRR | train s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let col = |f: &dyn Fn(&(RankMetrics, RankMetrics)) -> f64| {
            stat(&r.runs.iter().map(f).collect::<Vec<_>>())
        };
        let mean_mrr = r.runs.iter().map(|x| x.0.mrr).sum::<f64>() / r.runs.len() as f64;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.method,
            r.bytes,
            col(&|x| x.0.mrr),
            col(&|x| x.0.recall_at_1),
            col(&|x| x.0.recall_at_10),
            col(&|x| x.1.mrr),
            col(&|x| x.1.recall_at_1),
            col(&|x| x.1.recall_at_10),
            float_mrr.map_or("-".into(), |f| format!("{:.1}%", 100.0 * mean_mrr / f)),
            if r.train_seconds.is_empty() {
                "-".into()
            } else {
                format!(
                    "{:.0}",
                    r.train_seconds.iter().sum::<f64>() / r.train_seconds.len() as f64
                )
            }
        );
    }
    for l in compat_lines {
        println!("compatible training: {l}");
    }
    Ok(())
}

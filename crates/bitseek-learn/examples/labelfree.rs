//! Label-free learned codes against RaBitQ at equal bytes, on packages the encoder never saw.
//!
//! The code-search dev set is split by package (seeded): half the packages are the test pool,
//! a tenth of the rest validates (early stopping, best encoder kept), the others train. Training
//! sees only the training packages' *code* embeddings, no pairs and no queries (`neighbors`
//! mode). The test measures raw recall@10 against the exact float top 10 (and recall@10 after
//! rescoring the codes' top 20 / 40 by exact float), with the test packages' docstring embeddings
//! as queries over their code embeddings, and again with a held-out fifth of the test code
//! embeddings as queries over the rest; RaBitQ is fitted on the test database itself (as an
//! index build would) with its default 4-bit query, learned codes use their default 8-bit
//! asymmetric query. The `rabitq-distill` and `rabitq-itq` rows keep RaBitQ (its estimator, its
//! factors, fitted on the test database) and replace only its rotation by one learned on the
//! training packages ([`bitseek_learn::rotation`]).
//!
//! `cargo run --release -p bitseek-learn --example labelfree -- DATA/dev-rust.jsonl.gz`
//! (bench/labelfree.sh runs both languages and several seeds).

use anyhow::{bail, Context};
use bitseek_codes::quantizer::{FitOptions, Lattice, Quantizer, QuantizerKind, QueryMode};
use bitseek_learn::data::{neighbours, Pairs};
use bitseek_learn::eval::{encode_all, recall_at, Recall};
use bitseek_learn::rotation::{distill_rotation, learn_rotation, DistillConfig, RotationConfig};
use bitseek_learn::train::{train, Event, TrainConfig, TrainData};
use bitseek_learn::{Init, Objective, ValMetric};
use clap::Parser;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// dev-<lang>.jsonl.gz; <stem>.query.f16.npy and <stem>.code.f16.npy lie beside it.
    pairs: PathBuf,
    /// Seed of the package split and of training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Code dimensions of the learned 1-bit code (448: 56 B of bits + 8 B of factors = 64 B,
    /// RaBitQ's 48 B + 16 B at 384 dimensions).
    #[arg(long, default_value_t = 448)]
    dims: usize,
    #[arg(long, default_value_t = 1)]
    bits: usize,
    /// Hidden width (the rotation start needs 2 × min(dim, dims)).
    #[arg(long, default_value_t = 768)]
    hidden: usize,
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Rows per batch; each brings its 10 mined neighbours as candidates.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Teacher temperature of the distillation (0.1 had the best validation recall on the Rust
    /// set's validation package among 0.02, 0.05 and 0.1).
    #[arg(long, default_value_t = 0.1)]
    tau: f32,
    /// Validate every N steps as well as at epoch ends.
    #[arg(long, default_value_t = 10)]
    val_every: usize,
    #[arg(long, default_value_t = 4)]
    patience: usize,
    /// Rows: rabitq, rabitq-itq (RaBitQ with a rotation learned by ITQ on the training
    /// packages, validated on the validation packages), start (untrained rotation start), distill, infonce (the previous neighbors
    /// mode: Xavier start, InfoNCE), distill-xavier, distill-scales (learned per-dimension
    /// scales), distill-mimic (low-rank mimicking, rank --mimic), distill-scales-mimic.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rabitq,start,distill,infonce"
    )]
    rows: Vec<String>,
    /// Test queries of each kind used (the first ones).
    #[arg(long, default_value_t = 4000)]
    max_queries: usize,
    /// How the distilled encoder starts: rotation, rotation-centred or xavier.
    #[arg(long, default_value = "rotation")]
    init: Init,
    /// Rank of the low-rank mimicking term in the *-mimic rows.
    #[arg(long, default_value_t = 32)]
    mimic: usize,
    /// Weight of the mimicking term.
    #[arg(long, default_value_t = 1.0)]
    mimic_weight: f64,
    /// AdamW learning rate of the rabitq-distill rows (entries of P are about 1/√D).
    #[arg(long, default_value_t = 1e-4)]
    rot_lr: f64,
    /// More unlabelled vectors (.npy) for the rabitq-itq row's training, e.g. another dev set's
    /// code embeddings (never the test packages').
    #[arg(long)]
    itq_extra: Option<PathBuf>,
    /// ITQ iterations of the rabitq-itq row (validated every 5).
    #[arg(long, default_value_t = 50)]
    itq_iters: usize,
    /// Also print one JSON line per row.
    #[arg(long)]
    json: bool,
}

fn packages(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let r = BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let mut out = Vec::new();
    for line in r.lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        out.push(
            v["package"]
                .as_str()
                .context("no package field")?
                .to_string(),
        );
    }
    Ok(out)
}

fn pick(data: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| data[r * dim..(r + 1) * dim].iter().copied())
        .collect()
}

fn normalise(mut v: Vec<f32>, dim: usize) -> Vec<f32> {
    v.chunks_exact_mut(dim)
        .for_each(bitseek_index::vector::normalize);
    v
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let pkg = packages(&a.pairs)?;
    let stem = a
        .pairs
        .file_name()
        .context("no file name")?
        .to_string_lossy()
        .replace(".jsonl.gz", "");
    let dir = a.pairs.parent().unwrap_or(std::path::Path::new("."));
    let q = bitseek_index::input::read_vectors(&dir.join(format!("{stem}.query.f16.npy")))?;
    let c = bitseek_index::input::read_vectors(&dir.join(format!("{stem}.code.f16.npy")))?;
    if q.rows() != pkg.len() || c.rows() != pkg.len() {
        bail!("embeddings and jsonl differ in rows");
    }
    let dim = c.dim;
    let (qv, cv) = (normalise(q.data, dim), normalise(c.data, dim));
    let mut names: Vec<&String> = pkg.iter().collect();
    names.sort();
    names.dedup();
    names.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
        a.seed ^ 0x1abe1,
    ));
    let n = pkg.len();
    let (mut test, mut val, mut tr) = (Vec::new(), Vec::new(), Vec::new());
    let (mut nt, mut nv) = (0usize, 0usize);
    for p in names {
        let rows: Vec<usize> = (0..n).filter(|&i| &pkg[i] == p).collect();
        if nt * 2 < n {
            nt += rows.len();
            test.push(p.clone());
        } else if nv * 20 < n {
            nv += rows.len();
            val.push(p.clone());
        } else {
            tr.push(p.clone());
        }
    }
    let rows_of =
        |set: &[String]| -> Vec<usize> { (0..n).filter(|&i| set.contains(&pkg[i])).collect() };
    let (test_rows, val_rows, train_rows) = (rows_of(&test), rows_of(&val), rows_of(&tr));
    eprintln!(
        "{}: {} train code vectors ({} packages), {} validation ({} packages), {} test ({} packages)",
        a.pairs.display(),
        train_rows.len(),
        tr.len(),
        val_rows.len(),
        val.len(),
        test_rows.len(),
        test.len()
    );
    let train_data = pick(&cv, dim, &train_rows);
    // Validation: alternate validation code vectors as queries and as the database.
    let half = val_rows.len() / 2;
    let vq: Vec<usize> = val_rows.iter().step_by(2).copied().take(half).collect();
    let vd: Vec<usize> = val_rows
        .iter()
        .skip(1)
        .step_by(2)
        .copied()
        .take(half)
        .collect();
    let (val_q, val_d) = (pick(&cv, dim, &vq), pick(&cv, dim, &vd));
    let val_pairs = Pairs::new(dim, val_q.clone(), val_d.clone()).map_err(anyhow::Error::msg)?;
    // Test: docstrings over code; and a fifth of the code vectors over the rest.
    let db = pick(&cv, dim, &test_rows);
    let docq = pick(&qv, dim, &test_rows[..test_rows.len().min(a.max_queries)]);
    let cut = test_rows.len() / 5;
    let codeq = pick(&cv, dim, &test_rows[..cut.min(a.max_queries)]);
    let codedb = pick(&cv, dim, &test_rows[cut..]);
    let mut itq_rows = train_data.clone();
    if let Some(p) = &a.itq_extra {
        let extra = bitseek_index::input::read_vectors(p)?;
        if extra.dim != dim {
            bail!("--itq-extra has dimension {}, not {dim}", extra.dim);
        }
        itq_rows.extend(normalise(extra.data, dim));
    }
    let nbrs = neighbours(&train_data, dim, 10);
    let data = TrainData::Neighbors {
        dim,
        data: train_data,
        neighbours: nbrs,
    };
    let report = |name: &str, qz: &Quantizer, extra: serde_json::Value| {
        let bytes = encode_all(qz, &db[..dim], dim).bytes_per_vector();
        let r: Vec<Recall> = [(&docq, &db), (&codeq, &codedb)]
            .iter()
            .map(|(qs, ds)| recall_at(qz, qs, ds, dim, 10, QueryMode::Asymmetric, None, &[2, 4]))
            .collect();
        println!(
            "| {name} | {bytes} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            r[0].raw,
            r[0].rescored[0].1,
            r[0].rescored[1].1,
            r[1].raw,
            r[1].rescored[0].1,
            r[1].rescored[1].1
        );
        if a.json {
            println!(
                "{}",
                serde_json::json!({"row": name, "seed": a.seed, "bytes": bytes,
                    "docstring_queries": r[0], "code_queries": r[1], "training": extra})
            );
        }
    };
    println!("| method | bytes/vector | doc R@10 raw | ×2 | ×4 | code R@10 raw | ×2 | ×4 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let base = TrainConfig {
        m: a.dims,
        bits: a.bits,
        hidden: a.hidden,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        patience: a.patience,
        seed: a.seed,
        val_every: a.val_every,
        init: a.init,
        objective: Objective::Distill,
        distill_temperature: a.tau,
        val_metric: ValMetric::Recall,
        ..Default::default()
    };
    for row in &a.rows {
        let t = Instant::now();
        let cfg = match row.as_str() {
            "rabitq" => {
                let qz = Quantizer::fit(QuantizerKind::Rabitq, dim, &db, FitOptions::default());
                report("rabitq", &qz, serde_json::Value::Null);
                continue;
            }
            "rabitq-itq" => {
                let cfg = RotationConfig {
                    iters: a.itq_iters,
                    ..Default::default()
                };
                let r = learn_rotation(dim, &itq_rows, &val_q, &val_d, &cfg, &mut |i, q, v| {
                    eprintln!(
                        "  rabitq-itq iteration {i}: mean ⟨x̄,o⟩ {q:.4}, validation recall {v:.4}"
                    )
                });
                eprintln!(
                    "rabitq-itq: validation recall@10 {:.4} → {:.4} (iteration {}), ⟨x̄,o⟩ {:.4} → {:.4}, {:.0} s",
                    r.start_val,
                    r.best_val,
                    r.best_iter,
                    r.start_quality,
                    r.best_quality,
                    t.elapsed().as_secs_f64()
                );
                let qz = rabitq_rotated(dim, &db, r.rotation)?;
                let extra = serde_json::json!({"start_val_recall": r.start_val,
                    "best_val_recall": r.best_val, "best_iter": r.best_iter,
                    "start_quality": r.start_quality, "best_quality": r.best_quality,
                    "seconds": t.elapsed().as_secs_f64()});
                report("rabitq, ITQ-learned rotation", &qz, extra);
                continue;
            }
            "rabitq-distill" | "rabitq-itq-distill" => {
                let fitted_start = Lattice::fit(dim, 1, &itq_rows, FitOptions::default());
                let start = if row == "rabitq-itq-distill" {
                    let cfg = RotationConfig {
                        iters: a.itq_iters,
                        ..Default::default()
                    };
                    learn_rotation(dim, &itq_rows, &val_q, &val_d, &cfg, &mut |_, _, _| {}).rotation
                } else {
                    fitted_start.rotation
                };
                let cfg = DistillConfig {
                    epochs: a.epochs,
                    batch: a.batch,
                    lr: a.rot_lr,
                    tau: a.tau,
                    val_every: a.val_every,
                    patience: a.patience * 2,
                    seed: a.seed,
                };
                let TrainData::Neighbors {
                    neighbours: nb,
                    data: rows,
                    ..
                } = &data
                else {
                    bail!("neighbors data");
                };
                let r =
                    distill_rotation(dim, rows, nb, &start, &val_q, &val_d, &cfg, &mut |s, v| {
                        eprintln!("  {row} step {s}: validation recall {v:.4}")
                    })?;
                eprintln!(
                    "{row}: validation recall@10 {:.4} → {:.4} (step {}), {:.0} s",
                    r.start_val,
                    r.best_val,
                    r.best_iter,
                    t.elapsed().as_secs_f64()
                );
                let qz = rabitq_rotated(dim, &db, r.rotation)?;
                let extra = serde_json::json!({"start_val_recall": r.start_val,
                    "best_val_recall": r.best_val, "best_step": r.best_iter,
                    "seconds": t.elapsed().as_secs_f64()});
                report(&format!("rabitq, rotation by {row}"), &qz, extra);
                continue;
            }
            "start" => TrainConfig {
                epochs: 1,
                lr: 0.0,
                ..base
            },
            "distill" => base,
            "distill-xavier" => TrainConfig {
                init: Init::Xavier,
                ..base
            },
            "distill-scales" => TrainConfig {
                scales: true,
                ..base
            },
            "distill-mimic" => TrainConfig {
                mimic: a.mimic,
                ..base
            },
            "distill-scales-mimic" => TrainConfig {
                scales: true,
                mimic: a.mimic,
                ..base
            },
            "infonce" => TrainConfig {
                init: Init::Xavier,
                objective: Objective::Infonce,
                hidden: 128,
                lr: 3e-4,
                batch: 512,
                ..base
            },
            other => bail!("unknown row {other}"),
        };
        let trained = train(&data, &val_pairs, &cfg, None, &mut |e| {
            if let Event::Check(c) = e {
                eprintln!(
                    "  {row} step {}: validation recall {:.4}",
                    c.step, c.val_mrr
                );
            }
        })?;
        eprintln!(
            "{row}: validation recall@10 {:.4} → {:.4} (epoch {}, step {}), {:.0} s",
            trained.start_val_mrr,
            trained.best_val_mrr,
            trained.best_epoch,
            trained.best_step,
            t.elapsed().as_secs_f64()
        );
        let name = if row == "start" {
            format!(
                "learned {}-bit × {}, untrained {} start",
                a.bits, a.dims, a.init
            )
        } else {
            format!(
                "learned {}-bit × {}, {row} ({} start)",
                a.bits, cfg.m, cfg.init
            )
        };
        let extra = serde_json::json!({"start_val_recall": trained.start_val_mrr,
            "best_val_recall": trained.best_val_mrr, "best_step": trained.best_step,
            "seconds": t.elapsed().as_secs_f64()});
        report(&name, &Quantizer::Learned(Box::new(trained.encoder)), extra);
    }
    Ok(())
}

/// RaBitQ fitted on `db` (as an index build would) with `rotation` in place of its random one.
fn rabitq_rotated(dim: usize, db: &[f32], rotation: Vec<f32>) -> anyhow::Result<Quantizer> {
    let Quantizer::Lattice(fitted) =
        Quantizer::fit(QuantizerKind::Rabitq, dim, db, FitOptions::default())
    else {
        bail!("rabitq is a lattice quantizer");
    };
    Ok(Quantizer::Lattice(Lattice { rotation, ..fitted }))
}

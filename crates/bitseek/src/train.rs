//! `bitseek train`: learns a recurrent binarizer (learned codes) from embedding pairs or from
//! unlabelled vectors, and writes the encoder file that `bitseek build --quantizer learned:FILE`
//! uses.

use anyhow::{bail, Context};
use bitseek_index::encoder::{load_encoder, save_encoder};
use bitseek_learn::data::{neighbours, read_pairs_npz, read_plain, Pairs};
use bitseek_learn::train::{train, Event, TrainConfig, TrainData};
use bitseek_learn::{Augment, Estimator};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `--data` is a .npz with arrays `query` and `doc`; row i of each belong together.
    Pairs,
    /// `--data` holds plain vectors; positives are each vector's exact float top-k neighbours.
    Neighbors,
}

#[derive(clap::Args)]
pub struct Args {
    /// Training data: pairs.npz (arrays `query`, `doc`; float32 or float16) for --mode pairs, or
    /// vectors (.npy, .fvecs, JSON lines) for --mode neighbors.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "pairs")]
    mode: Mode,
    /// Validation data in the same form as --data (default: a random tenth of --data held out).
    /// Hold out whole packages or sources here to validate on data unlike the training data.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Bits (planes) per code dimension, 1 to 4.
    #[arg(long, default_value_t = 2)]
    bits: usize,
    /// Code dimensions m.
    #[arg(long, default_value_t = 384, value_parser = crate::positive)]
    dims: usize,
    /// Hidden width of every MLP (the cost of training and of encoding a query grows with it;
    /// 128 keeps a 384 → 384×2-bit query under 50 µs on one core). Default: 128, or
    /// 2 × min(input dimension, --dims) with the rotation start, which needs that many.
    #[arg(long, value_parser = crate::positive)]
    hidden: Option<usize>,
    /// How the encoder starts: xavier (random MLPs), rotation (the training-free lattice:
    /// RaBitQ's rotation and sign, exactly) or rotation-centred (on x − mean). Default: rotation
    /// in --mode neighbors, xavier in --mode pairs.
    #[arg(long)]
    init: Option<bitseek_learn::Init>,
    /// What training minimises: infonce (pairs are positives) or distill (the float cosine
    /// ranking over in-batch rows and mined neighbours, scored as the index scores). Default:
    /// distill in --mode neighbors, infonce in --mode pairs.
    #[arg(long)]
    objective: Option<bitseek_learn::Objective>,
    /// The teacher's temperature in --objective distill.
    #[arg(long, default_value_t = 0.1)]
    distill_temperature: f32,
    /// What validation measures: mrr (each query's own document) or recall (raw recall@10 of the
    /// codes against exact float search). Default: recall in --mode neighbors, mrr in --mode pairs.
    #[arg(long)]
    val_metric: Option<bitseek_learn::ValMetric>,
    /// Learn a scale per code dimension (BinaryDM's learnable basis scales), folded into the
    /// stored factors and the query, so searching costs the same.
    #[arg(long)]
    scales: bool,
    /// Learn a weight per bit-plane (BinaryDM's multi-basis: Σ β_k s_k instead of Σ 2^-k s_k);
    /// searching weighs each plane's popcount apart in one kernel call (asymmetric queries at
    /// most 8 bits). Only useful with --bits 2 or more.
    #[arg(long)]
    plane_scales: bool,
    /// BinaryDM's low-rank mimicking: also match the codes (through a linear decoder used only
    /// in training) to the embedding in its top RANK principal axes; 0 turns it off.
    #[arg(long, default_value_t = 0)]
    mimic: usize,
    /// Weight of the --mimic term.
    #[arg(long, default_value_t = 1.0)]
    mimic_weight: f64,
    /// Gradient through sign: ste (clipped), reste (power function, o 1 → 3) or biper
    /// (periodic binary MLP weights).
    #[arg(long, default_value = "ste")]
    estimator: Estimator,
    /// Between each MLP's first layer and its ReLU: batch (BatchNorm, BEBR's block) or none.
    /// Batch norm made cross-package validation worse on the Python code-search set.
    #[arg(long, default_value = "none")]
    norm: bitseek_learn::Norm,
    /// Representation-level augmentation: none, racs (2 copies) or racs:N.
    #[arg(long, default_value = "none")]
    augment: Augment,
    /// An older encoder to stay compatible with: new query codes must search its document codes.
    #[arg(long)]
    compatible_with: Option<PathBuf>,
    /// Most epochs (training stops early when validation MRR stops improving).
    #[arg(long, default_value_t = TrainConfig::default().epochs, value_parser = crate::positive)]
    epochs: usize,
    /// Epochs without a better validation MRR before stopping.
    #[arg(long, default_value_t = 3, value_parser = crate::positive)]
    patience: usize,
    /// Pairs per batch.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    /// Also validate every N optimiser steps, not only at epoch ends (patience then counts
    /// validations). On large training sets the best encoder can lie inside the first epoch.
    #[arg(long, default_value_t = 0)]
    val_every: usize,
    /// Pairs whose float queries, or documents, have a cosine above this are near-duplicates
    /// (one docstring on many functions, copied code) and never each other's negatives; 1 turns
    /// this off.
    #[arg(long, default_value_t = 0.95)]
    near_duplicate: f32,
    /// Neighbours per vector in --mode neighbors.
    #[arg(long, default_value_t = 10, value_parser = crate::positive)]
    neighbors: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the encoder (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object instead of progress and a summary.
    #[arg(long)]
    json: bool,
}

/// Pairs of each vector with its nearest other vector (validation in neighbors mode).
fn nearest_pairs(dim: usize, data: &[f32]) -> Pairs {
    let nn = neighbours(data, dim, 1);
    let (mut q, mut d) = (Vec::new(), Vec::new());
    for (i, l) in nn.iter().enumerate() {
        if let Some(&j) = l.first() {
            q.extend_from_slice(&data[i * dim..(i + 1) * dim]);
            d.extend_from_slice(&data[j as usize * dim..(j as usize + 1) * dim]);
        }
    }
    Pairs::new(dim, q, d).expect("normalised rows")
}

/// Training data and validation pairs, as --mode and --val say.
fn load(a: &Args) -> anyhow::Result<(TrainData, Pairs)> {
    let is_npz = |p: &Path| p.extension().is_some_and(|e| e == "npz");
    match a.mode {
        Mode::Pairs => {
            if !is_npz(&a.data) {
                bail!(
                    "{}: --mode pairs reads a .npz with arrays `query` and `doc`; for plain vectors use --mode neighbors",
                    a.data.display()
                );
            }
            let p = read_pairs_npz(&a.data)?;
            let (train, val) = match &a.val {
                Some(v) => (p, read_pairs_npz(v)?),
                None => p.hold_out(a.seed),
            };
            Ok((TrainData::Pairs(train), val))
        }
        Mode::Neighbors => {
            if is_npz(&a.data) {
                bail!(
                    "{}: --mode neighbors reads plain vectors (.npy, .fvecs, JSON lines); for a pairs .npz use --mode pairs",
                    a.data.display()
                );
            }
            let (dim, mut data) = read_plain(&a.data)?;
            let n = data.len() / dim;
            if n < 4 {
                bail!("{}: {n} vectors; at least 4 are needed", a.data.display());
            }
            let val = match &a.val {
                Some(v) => {
                    let (vd, rows) = read_plain(v)?;
                    nearest_pairs(vd, &rows)
                }
                None => {
                    // Hold out the last tenth (after a seeded shuffle) as validation vectors.
                    let mut rows: Vec<usize> = (0..n).collect();
                    rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(a.seed ^ 0x7a11));
                    let nv = (n / 10).max(2);
                    let pick = |rs: &[usize]| -> Vec<f32> {
                        rs.iter()
                            .flat_map(|&r| data[r * dim..(r + 1) * dim].to_vec())
                            .collect()
                    };
                    let val = nearest_pairs(dim, &pick(&rows[..nv]));
                    data = pick(&rows[nv..]);
                    val
                }
            };
            let nbrs = neighbours(&data, dim, a.neighbors);
            Ok((
                TrainData::Neighbors {
                    dim,
                    data,
                    neighbours: nbrs,
                },
                val,
            ))
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let (data, val) = load(&a)?;
    if val.dim != data.dim() {
        bail!(
            "validation vectors have dimension {} but training vectors have {}; use embeddings of one model",
            val.dim,
            data.dim()
        );
    }
    let old = match &a.compatible_with {
        Some(p) => Some(load_encoder(p)?.0),
        None => None,
    };
    let neighbors = a.mode == Mode::Neighbors;
    let init = a.init.unwrap_or(if neighbors {
        bitseek_learn::Init::Rotation
    } else {
        bitseek_learn::Init::Xavier
    });
    let hidden = a.hidden.unwrap_or(if init == bitseek_learn::Init::Xavier {
        128
    } else {
        2 * data.dim().min(a.dims)
    });
    let cfg = TrainConfig {
        m: a.dims,
        bits: a.bits,
        hidden,
        init,
        objective: a.objective.unwrap_or(if neighbors {
            bitseek_learn::Objective::Distill
        } else {
            bitseek_learn::Objective::Infonce
        }),
        distill_temperature: a.distill_temperature,
        val_metric: a.val_metric.unwrap_or(if neighbors {
            bitseek_learn::ValMetric::Recall
        } else {
            bitseek_learn::ValMetric::Mrr
        }),
        scales: a.scales,
        plane_scales: a.plane_scales,
        mimic: a.mimic,
        mimic_weight: a.mimic_weight,
        estimator: a.estimator,
        norm: a.norm,
        augment: a.augment,
        epochs: a.epochs,
        patience: a.patience,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        val_every: a.val_every,
        near_duplicate: a.near_duplicate,
        ..Default::default()
    };
    let steps = (data.len() / a.batch.clamp(1, data.len().max(1))).max(1) as u64;
    let bar = crate::progress(steps * a.epochs as u64, "training", a.json);
    let json = a.json;
    let epochs = a.epochs;
    let mut best = f64::NEG_INFINITY;
    let metric = cfg.val_metric;
    let trained = train(&data, &val, &cfg, old.as_ref(), &mut |e| match e {
        Event::Step { .. } => bar.inc(1),
        Event::Epoch(e) => {
            if !json {
                let mark = if e.val_mrr > best { " (best)" } else { "" };
                best = best.max(e.val_mrr);
                bar.suspend(|| {
                    eprintln!(
                        "epoch {}/{epochs}: loss {:.4}, validation {metric} {:.4}{mark} ({:.1} s)",
                        e.epoch, e.loss, e.val_mrr, e.seconds
                    )
                });
            }
        }
        Event::Check(c) => {
            if !json {
                let mark = if c.val_mrr > best { " (best)" } else { "" };
                best = best.max(c.val_mrr);
                bar.suspend(|| {
                    eprintln!(
                        "  step {}: validation {metric} {:.4}{mark}",
                        c.step, c.val_mrr
                    )
                });
            }
        }
    })
    .with_context(|| format!("cannot train on {}", a.data.display()))?;
    bar.finish_and_clear();
    let mut summary = trained.summary(&cfg, data.len(), val.len());
    summary.insert("encoder".into(), serde_json::json!(a.out));
    summary.insert("data".into(), serde_json::json!(a.data));
    let mode = format!("{:?}", a.mode).to_lowercase();
    summary.insert("mode".into(), mode.into());
    summary.insert(
        "compatible_with".into(),
        serde_json::json!(a.compatible_with),
    );
    let seconds = started.elapsed().as_secs_f64();
    summary.insert("seconds".into(), seconds.into());
    let summary = serde_json::Value::Object(summary);
    let bytes = save_encoder(&a.out, &trained.encoder, summary.clone())?;
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "trained {} ({}-bit × {} dims from {} dims, {}, {}, {} start, {}): validation {} {:.4} → {:.4} (epoch {}, step {}, of {} epochs{}), {:.0} s, {:.1} MB",
            a.out.display(),
            a.bits,
            a.dims,
            data.dim(),
            a.estimator,
            a.augment,
            cfg.init,
            cfg.objective,
            cfg.val_metric,
            trained.start_val_mrr,
            trained.best_val_mrr,
            trained.best_epoch,
            trained.best_step,
            trained.epochs.len(),
            if trained.stopped_early { ", stopped early" } else { "" },
            started.elapsed().as_secs_f64(),
            bytes as f64 / 1e6
        );
    }
    Ok(())
}

//! The training loop: mini-batches of pairs (optionally with RACS copies), one shared binarizer
//! for both sides (one forward pass over queries and documents together, so batch norm sees both),
//! AdamW, ReSTE's `o` on its cosine ramp, the validation MRR of the exported plain-Rust encoder
//! after every epoch (and every `val_every` steps), early stopping on it, and the best one kept.
//!
//! Compatible training (methods.md §1.4, BCT-style): with a frozen older encoder, the loss adds
//! `λ·InfoNCE(new(query), old(doc))`, so queries encoded by the new version can search documents
//! encoded by the old one without re-encoding them.

use crate::augment::{expand, Augment, RacsParams};
use crate::data::{neighbour_pairs, Pairs};
use crate::estimator::{reste_o, Estimator};
use crate::eval::{code_ranks, cross_ranks, mrr};
use crate::loss::{info_nce, LossParams, NearDuplicates};
use crate::model::{rows_tensor, Binarizer, Norm};
use bitseek_codes::quantizer::{Learned, LearnedConfig, Quantizer, QueryMode};
use candle_core::Tensor;
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;
use std::time::Instant;

/// Everything a training run is configured by.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TrainConfig {
    /// Code dimensions.
    pub m: usize,
    /// Bits (planes) per code dimension, 1..=4.
    pub bits: usize,
    /// Hidden width of every MLP.
    pub hidden: usize,
    pub estimator: Estimator,
    /// Batch norm inside every MLP, or none.
    pub norm: Norm,
    pub augment: Augment,
    #[serde(skip)]
    pub racs: RacsParams,
    /// Most epochs.
    pub epochs: usize,
    /// Pairs per batch (before augmentation).
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    #[serde(skip)]
    pub loss: LossParams,
    /// Epochs without a better validation MRR before stopping.
    pub patience: usize,
    pub seed: u64,
    /// Weight of the cross-version term in compatible training.
    pub compat_weight: f64,
    /// Validation pairs used for the per-epoch metric (the first ones).
    pub max_val: usize,
    /// Also validate every this many steps (0: only at the end of each epoch). On large sets the
    /// best encoder can lie inside the first epoch.
    pub val_every: usize,
    /// Pairs whose float queries or documents have a cosine above this are near-duplicates and
    /// never each other's negatives (1 or more: only same-id pairs are masked).
    pub near_duplicate: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            m: 384,
            bits: 2,
            hidden: 128,
            estimator: Estimator::Ste,
            norm: Norm::None,
            augment: Augment::None,
            racs: RacsParams::default(),
            epochs: 20,
            batch: 512,
            lr: 3e-4,
            weight_decay: 1e-4,
            loss: LossParams::default(),
            patience: 3,
            seed: 0,
            compat_weight: 1.0,
            max_val: 4000,
            val_every: 0,
            near_duplicate: 0.95,
        }
    }
}

/// Where positives come from.
pub enum TrainData {
    /// Labelled pairs (row `i` of queries belongs to row `i` of documents).
    Pairs(Pairs),
    /// Unlabelled vectors; positives are exact float top-k neighbours.
    Neighbors {
        dim: usize,
        data: Vec<f32>,
        neighbours: Vec<Vec<u32>>,
    },
}

impl TrainData {
    pub fn dim(&self) -> usize {
        match self {
            TrainData::Pairs(p) => p.dim,
            TrainData::Neighbors { dim, .. } => *dim,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TrainData::Pairs(p) => p.len(),
            TrainData::Neighbors { neighbours, .. } => neighbours.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn epoch(&self, rng: &mut ChaCha8Rng) -> Cow<'_, Pairs> {
        match self {
            TrainData::Pairs(p) => Cow::Borrowed(p),
            TrainData::Neighbors {
                dim,
                data,
                neighbours,
            } => Cow::Owned(neighbour_pairs(data, *dim, neighbours, rng)),
        }
    }
}

/// One finished epoch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub loss: f64,
    /// Symmetric code MRR on the validation pairs.
    pub val_mrr: f64,
    pub seconds: f64,
}

/// One validation of the encoder as it stood after `step` optimiser steps.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub epoch: usize,
    pub step: usize,
    pub val_mrr: f64,
}

/// What training produced.
pub struct Trained {
    /// The encoder of the best epoch.
    pub encoder: Learned,
    /// Validation MRR of the untrained start.
    pub start_val_mrr: f64,
    pub epochs: Vec<Epoch>,
    /// Every validation, in order (the epoch ends and, with `val_every`, the checks between).
    pub checks: Vec<Check>,
    /// Epoch whose encoder was kept (0 = the untrained start).
    pub best_epoch: usize,
    /// Optimiser steps behind the kept encoder.
    pub best_step: usize,
    pub best_val_mrr: f64,
    pub stopped_early: bool,
}

impl Trained {
    /// What the run did, as an encoder file's training metadata records it: the pairs trained and
    /// validated on, the configuration, and the validation MRR from the start to the kept epoch.
    /// The CLI and the Python binding both write it; callers add what only they know.
    pub fn summary(
        &self,
        cfg: &TrainConfig,
        training_pairs: usize,
        validation_pairs: usize,
    ) -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(map) = serde_json::json!({
            "training_pairs": training_pairs,
            "validation_pairs": validation_pairs,
            "config": cfg,
            "start_val_mrr": self.start_val_mrr,
            "best_val_mrr": self.best_val_mrr,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "epochs_run": self.epochs.len(),
            "stopped_early": self.stopped_early,
        }) else {
            unreachable!("json! of an object literal is an object")
        };
        map
    }
}

/// Progress reports.
pub enum Event<'a> {
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
    },
    Epoch(&'a Epoch),
    /// A validation between epoch ends (`val_every`).
    Check(&'a Check),
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Bad(String),
}

fn check(
    data: &TrainData,
    val: &Pairs,
    cfg: &TrainConfig,
    old: Option<&Learned>,
) -> Result<(), TrainError> {
    let bad = |s: String| Err(TrainError::Bad(s));
    if !(1..=bitseek_codes::quantizer::learned::MAX_BITS).contains(&cfg.bits) {
        return bad(format!("--bits {} is not supported; use 1 to 4", cfg.bits));
    }
    if cfg.m == 0 || cfg.hidden == 0 || cfg.batch < 2 || cfg.epochs == 0 {
        return bad(
            "dims, hidden width and epochs must be at least 1 and the batch at least 2".into(),
        );
    }
    if cfg.near_duplicate.is_nan() || cfg.near_duplicate <= 0.0 {
        return bad(format!(
            "--near-duplicate {} must be a cosine above 0 (1 or more turns the mask off)",
            cfg.near_duplicate
        ));
    }
    if data.len() < 2 {
        return bad(format!(
            "{} training pairs; at least 2 are needed",
            data.len()
        ));
    }
    if val.is_empty() {
        return bad("no validation pairs".into());
    }
    if val.dim != data.dim() {
        return bad(format!(
            "validation vectors have dimension {} but training vectors have {}",
            val.dim,
            data.dim()
        ));
    }
    if let Some(o) = old {
        let c = o.config;
        if c.dim != data.dim() {
            return bad(format!(
                "the older encoder was trained for dimension {} but the data has dimension {}; compatible training needs the same embeddings",
                c.dim,
                data.dim()
            ));
        }
        if (c.m, c.bits) != (cfg.m, cfg.bits) {
            return bad(format!(
                "the older encoder makes {}-dim {}-bit codes; compatible training needs the same: use --dims {} --bits {}",
                c.m, c.bits, c.m, c.bits
            ));
        }
    }
    Ok(())
}

/// Symmetric code MRR of `enc` on `val` (first `max` pairs).
pub fn val_mrr(enc: &Learned, val: &Pairs, max: usize) -> f64 {
    let n = val.len().min(max);
    let d = val.dim;
    let q = Quantizer::Learned(Box::new(enc.clone()));
    mrr(&code_ranks(
        &q,
        &val.query[..n * d],
        &val.doc[..n * d],
        d,
        QueryMode::Symmetric,
        None,
    ))
}

/// Symmetric MRR when `new` encodes the queries and `old` the documents.
pub fn cross_val_mrr(new: &Learned, old: &Learned, val: &Pairs, max: usize) -> f64 {
    let n = val.len().min(max);
    let d = val.dim;
    let qn = Quantizer::Learned(Box::new(new.clone()));
    let qo = Quantizer::Learned(Box::new(old.clone()));
    mrr(&cross_ranks(
        &qn,
        &qo,
        &val.query[..n * d],
        &val.doc[..n * d],
        d,
        QueryMode::Symmetric,
        None,
    ))
}

/// The old encoder's codes `U − c` of `rows`, as a constant tensor.
fn old_codes(old: &Learned, rows: &[f32], m: usize) -> Result<Tensor, TrainError> {
    let c = old.offset();
    let f = old.forward(rows);
    let y: Vec<f32> = f.u.iter().map(|&u| u as f32 - c).collect();
    Ok(Tensor::from_vec(
        y,
        (f.u.len() / m, m),
        &candle_core::Device::Cpu,
    )?)
}

/// Trains a binarizer on `data`, validating on `val` after every epoch.
pub fn train(
    data: &TrainData,
    val: &Pairs,
    cfg: &TrainConfig,
    old: Option<&Learned>,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Trained, TrainError> {
    check(data, val, cfg, old)?;
    let dim = data.dim();
    let config = LearnedConfig {
        dim,
        m: cfg.m,
        bits: cfg.bits,
        hidden: cfg.hidden,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut model = Binarizer::new(config, cfg.estimator, cfg.norm, &mut rng)?;
    let mut opt = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let start_enc = model.export()?;
    let start_val_mrr = val_mrr(&start_enc, val, cfg.max_val);
    let mut best = Best {
        encoder: start_enc,
        mrr: start_val_mrr,
        epoch: 0,
        step: 0,
        trained: f64::NEG_INFINITY,
        since: 0,
    };
    let n = data.len();
    let batch = cfg.batch.min(n);
    let steps = n / batch;
    let total = (steps * cfg.epochs).max(1) as f32;
    let mut epochs = Vec::new();
    let mut checks = Vec::new();
    let mut stopped_early = false;
    let mut step_no = 0usize;
    // With N augmented copies the batch is (N+1)× larger; taking (N+1)× as many hardest negatives
    // keeps the same fraction of the batch, as RACS's all-negatives loss grows with the batch.
    // (With only 5 the collapsed code, loss log 6, undercuts the noisy augmented positives.)
    let loss_params = match cfg.augment {
        Augment::None => cfg.loss,
        Augment::Racs { copies } => LossParams {
            hard_negatives: cfg.loss.hard_negatives * (copies + 1),
            ..cfg.loss
        },
    };
    'epochs: for epoch in 1..=cfg.epochs {
        let t = Instant::now();
        let pairs = data.epoch(&mut rng);
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.shuffle(&mut rng);
        let mut loss_sum = 0f64;
        for (s, rows) in order.chunks_exact(batch).enumerate() {
            let b = pairs.select(rows);
            let near = NearDuplicates::find(&b.query, &b.doc, &b.ids, dim, cfg.near_duplicate);
            let (q, d, groups) = match cfg.augment {
                Augment::None => (b.query, b.doc, b.ids),
                Augment::Racs { copies } => {
                    expand(copies, &cfg.racs, &b.query, &b.doc, &b.ids, dim, &mut rng)
                }
            };
            let rows_n = groups.len();
            let o = reste_o(step_no as f32 / total);
            let both = rows_tensor(&[q.as_slice(), d.as_slice()].concat(), dim)?;
            let codes = model.forward(&both, true, o)?;
            let cq = codes.narrow(0, 0, rows_n)?;
            let cd = codes.narrow(0, rows_n, rows_n)?;
            let mut loss = info_nce(&cq, &cd, &groups, &near, &loss_params)?;
            if let Some(old) = old {
                let od = old_codes(old, &d, cfg.m)?;
                let cross = info_nce(&cq, &od, &groups, &near, &loss_params)?;
                loss = (loss + (cross * cfg.compat_weight)?)?;
            }
            opt.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            step_no += 1;
            on(Event::Step {
                epoch,
                step: s + 1,
                steps,
            });
            let last = s + 1 == steps;
            if cfg.val_every > 0 && step_no.is_multiple_of(cfg.val_every) && !last {
                let enc = model.export()?;
                let c = Check {
                    epoch,
                    step: step_no,
                    val_mrr: val_mrr(&enc, val, cfg.max_val),
                };
                on(Event::Check(&c));
                let stop = best.offer(enc, &c, cfg.patience);
                checks.push(c);
                if stop {
                    stopped_early = true;
                    epochs.push(Epoch {
                        epoch,
                        loss: loss_sum / (s + 1) as f64,
                        val_mrr: checks.last().map_or(0.0, |c| c.val_mrr),
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    break 'epochs;
                }
            }
        }
        let enc = model.export()?;
        let c = Check {
            epoch,
            step: step_no,
            val_mrr: val_mrr(&enc, val, cfg.max_val),
        };
        let e = Epoch {
            epoch,
            loss: loss_sum / steps.max(1) as f64,
            val_mrr: c.val_mrr,
            seconds: t.elapsed().as_secs_f64(),
        };
        on(Event::Epoch(&e));
        epochs.push(e);
        let stop = best.offer(enc, &c, cfg.patience);
        checks.push(c);
        if stop && epoch < cfg.epochs {
            stopped_early = true;
            break;
        }
    }
    Ok(Trained {
        encoder: best.encoder,
        start_val_mrr,
        epochs,
        checks,
        best_epoch: best.epoch,
        best_step: best.step,
        best_val_mrr: best.mrr,
        stopped_early,
    })
}

/// The best encoder so far, and the patience count.
struct Best {
    encoder: Learned,
    mrr: f64,
    epoch: usize,
    step: usize,
    /// Best validation of a trained encoder: patience counts from it, not from the untrained
    /// start, as the first checks may dip below the start before they pass it. The encoder kept
    /// is the best of all, the start included.
    trained: f64,
    since: usize,
}

impl Best {
    /// Offers the encoder validated by `c`; true when `patience` checks in a row brought nothing
    /// better.
    fn offer(&mut self, enc: Learned, c: &Check, patience: usize) -> bool {
        if c.val_mrr > self.mrr {
            (self.encoder, self.mrr, self.epoch, self.step) = (enc, c.val_mrr, c.epoch, c.step);
        }
        if c.val_mrr > self.trained {
            self.trained = c.val_mrr;
            self.since = 0;
            false
        } else {
            self.since += 1;
            self.since >= patience
        }
    }
}

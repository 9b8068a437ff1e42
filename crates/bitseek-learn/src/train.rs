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
use crate::loss::{distill, info_nce, LossParams, NearDuplicates};
use crate::model::{l2_normalize, rows_tensor, Binarizer, Init, Norm};
use bitseek_codes::quantizer::{Learned, LearnedConfig, Quantizer, QueryMode};
use candle_core::Tensor;
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;
use std::time::Instant;

/// What training minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Symmetric InfoNCE on code cosines ([`info_nce`]): positives are the pairs.
    Infonce,
    /// Listwise distillation of the float cosine ranking ([`distill`]): each row's candidates are
    /// the batch's queries and positives (mined float neighbours in `neighbors` mode), scored by
    /// the asymmetric query the index uses; no labels.
    Distill,
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "infonce" => Ok(Objective::Infonce),
            "distill" => Ok(Objective::Distill),
            _ => Err(format!(
                "unknown objective {s:?}: expected infonce or distill"
            )),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::Infonce => "infonce",
            Objective::Distill => "distill",
        })
    }
}

/// What each validation measures (higher is better; the best encoder is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValMetric {
    /// Symmetric code MRR of each validation query's own document.
    Mrr,
    /// Raw recall@10 of the asymmetric query (as the index searches) against the exact float
    /// top 10 of the validation documents: what compression without labels must keep.
    Recall,
}

impl std::str::FromStr for ValMetric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mrr" => Ok(ValMetric::Mrr),
            "recall" => Ok(ValMetric::Recall),
            _ => Err(format!(
                "unknown validation metric {s:?}: expected mrr or recall"
            )),
        }
    }
}

impl std::fmt::Display for ValMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValMetric::Mrr => "mrr",
            ValMetric::Recall => "recall",
        })
    }
}

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
    /// How the binarizer starts (Xavier, or the training-free rotation lattice).
    pub init: Init,
    pub objective: Objective,
    /// The teacher's temperature in [`Objective::Distill`] (float cosines).
    pub distill_temperature: f32,
    /// What validation measures ("val_mrr" fields then hold this metric).
    pub val_metric: ValMetric,
    /// Learn a scale per code dimension (BinaryDM's learnable basis scales), folded into the
    /// exported encoder's factors.
    pub scales: bool,
    /// Learn a weight per bit-plane (BinaryDM's multi-basis: `Σ β_k sₖ` instead of `Σ 2^-k sₖ`),
    /// scored by the weighted plane kernel. At 1 bit the one weight cancels in the cosine.
    pub plane_scales: bool,
    /// BinaryDM's low-rank mimicking: with rank `r > 0`, the loss adds
    /// `mimic_weight · mean ‖E_r(D·code) − E_r(x − μ)‖²`, where `E_r` holds the top `r` principal
    /// axes of the training sample (mean `μ`) and `D` is a linear decoder trained alongside
    /// (dropped at export): the codes must keep the float embedding's main subspace.
    pub mimic: usize,
    pub mimic_weight: f64,
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
            init: Init::Xavier,
            objective: Objective::Infonce,
            distill_temperature: 0.1,
            val_metric: ValMetric::Mrr,
            scales: false,
            plane_scales: false,
            mimic: 0,
            mimic_weight: 1.0,
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

    /// Every mined neighbour of the rows `ids` (row-major, in order), in `neighbors` mode: the
    /// distillation's candidates, so each row's list holds its whole float top-k.
    fn all_neighbours(&self, ids: &[u64]) -> Option<Vec<f32>> {
        match self {
            TrainData::Pairs(_) => None,
            TrainData::Neighbors {
                dim,
                data,
                neighbours,
            } => Some(
                ids.iter()
                    .flat_map(|&i| &neighbours[i as usize])
                    .flat_map(|&j| &data[j as usize * dim..(j as usize + 1) * dim])
                    .copied()
                    .collect(),
            ),
        }
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
    if cfg.mimic > data.dim() || !(cfg.mimic_weight.is_finite() && cfg.mimic_weight >= 0.0) {
        return bad(format!(
            "--mimic {} must be at most the embedding dimension {} and its weight {} finite and not negative",
            cfg.mimic,
            data.dim(),
            cfg.mimic_weight
        ));
    }
    if cfg.objective == Objective::Distill {
        if !matches!(cfg.augment, Augment::None) || old.is_some() {
            return bad(
                "the distill objective takes neither augmentation nor --compatible-with; use --augment none, or --objective infonce".into(),
            );
        }
        if cfg.distill_temperature.is_nan() || cfg.distill_temperature <= 0.0 {
            return bad(format!(
                "distillation temperature {} must be above 0",
                cfg.distill_temperature
            ));
        }
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

/// What `cfg.val_metric` measures for `enc` on `val` (first `cfg.max_val` pairs).
pub fn validate(enc: &Learned, val: &Pairs, cfg: &TrainConfig) -> f64 {
    match cfg.val_metric {
        ValMetric::Mrr => val_mrr(enc, val, cfg.max_val),
        ValMetric::Recall => {
            let n = val.len().min(cfg.max_val);
            let d = val.dim;
            let q = Quantizer::Learned(Box::new(enc.clone()));
            crate::eval::recall_at(
                &q,
                &val.query[..n * d],
                &val.doc[..n * d],
                d,
                10,
                QueryMode::Asymmetric,
                None,
                &[],
            )
            .raw
        }
    }
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

/// The old encoder's codes `V − C` of `rows` ([`Learned::level`]), as a constant tensor.
fn old_codes(old: &Learned, rows: &[f32], m: usize) -> Result<Tensor, TrainError> {
    let c = old.offset();
    let f = old.forward(rows);
    let y: Vec<f32> = f.u.iter().map(|&u| old.level(u) - c).collect();
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
    let sample: Vec<f32> = match data {
        TrainData::Pairs(p) => p.doc.iter().take(4000 * dim).copied().collect(),
        TrainData::Neighbors { data, .. } => data.iter().take(4000 * dim).copied().collect(),
    };
    let mut model = Binarizer::with_init(
        config,
        cfg.estimator,
        cfg.norm,
        cfg.init,
        &sample,
        cfg.seed,
        &mut rng,
    )?;
    // The student's inverse temperature in distillation (code cosines are compressed).
    let log_scale = candle_core::Var::new(
        &[(1.0 / cfg.distill_temperature.max(1e-3)).ln()],
        &candle_core::Device::Cpu,
    )?;
    if cfg.scales {
        model.learn_scales()?;
    }
    if cfg.plane_scales {
        model.learn_plane_scales()?;
    }
    let mimic = if cfg.mimic > 0 {
        let p = (cfg.init == Init::Rotation).then(|| crate::model::rotation(dim, cfg.m, cfg.seed));
        Some(Mimic::new(
            &sample,
            dim,
            cfg.m,
            cfg.mimic,
            p.as_deref(),
            &mut rng,
        )?)
    } else {
        None
    };
    let mut trained_vars = model.vars();
    if cfg.objective == Objective::Distill {
        trained_vars.push(log_scale.clone());
    }
    trained_vars.extend(mimic.as_ref().map(|m| m.decoder.clone()));
    let mut opt = AdamW::new(
        trained_vars,
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let start_enc = model.export()?;
    let start_val_mrr = validate(&start_enc, val, cfg);
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
            let (loss, codes) = if cfg.objective == Objective::Distill {
                // In neighbors mode the candidates are the batch and all its rows' neighbours.
                let both = match data.all_neighbours(&groups) {
                    Some(all) => rows_tensor(&[q.as_slice(), all.as_slice()].concat(), dim)?,
                    None => both.clone(),
                };
                let (codes, relaxed) = model.forward_relaxed(&both, true, o)?;
                let query = l2_normalize(&relaxed.narrow(0, 0, rows_n)?)?;
                let student = query.matmul(&l2_normalize(&codes)?.t()?)?;
                let float = l2_normalize(&both)?;
                let teacher = float.narrow(0, 0, rows_n)?.matmul(&float.t()?)?;
                let loss = distill(
                    &student,
                    &teacher,
                    &log_scale.as_tensor().exp()?,
                    cfg.distill_temperature,
                )?;
                (loss, codes)
            } else {
                let codes = model.forward(&both, true, o)?;
                let cq = codes.narrow(0, 0, rows_n)?;
                let cd = codes.narrow(0, rows_n, rows_n)?;
                let mut loss = info_nce(&cq, &cd, &groups, &near, &loss_params)?;
                if let Some(old) = old {
                    let od = old_codes(old, &d, cfg.m)?;
                    let cross = info_nce(&cq, &od, &groups, &near, &loss_params)?;
                    loss = (loss + (cross * cfg.compat_weight)?)?;
                }
                (loss, codes)
            };
            let loss = match &mimic {
                Some(m) => {
                    let rows = codes.dim(0)?;
                    let x = if rows == both.dim(0)? {
                        both.clone()
                    } else {
                        let all = data.all_neighbours(&groups).unwrap_or_default();
                        rows_tensor(&[q.as_slice(), all.as_slice()].concat(), dim)?
                    };
                    (loss + (m.loss(&codes, &x)? * cfg.mimic_weight)?)?
                }
                None => loss,
            };
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
                    val_mrr: validate(&enc, val, cfg),
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
            val_mrr: validate(&enc, val, cfg),
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

/// BinaryDM's low-rank mimicking term ([`TrainConfig::mimic`]).
struct Mimic {
    /// `r × dim` top principal axes of the training sample.
    axes: Tensor,
    /// `1 × dim` sample mean.
    mean: Tensor,
    /// `dim × m` linear decoder from codes to the embedding space (training only).
    decoder: candle_core::Var,
}

impl Mimic {
    fn new(
        sample: &[f32],
        dim: usize,
        m: usize,
        rank: usize,
        start: Option<&[f32]>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Mimic, TrainError> {
        use rand_distr::Distribution;
        let n = (sample.len() / dim).max(1);
        let mut mean = vec![0f32; dim];
        for r in sample.chunks_exact(dim) {
            mean.iter_mut()
                .zip(r)
                .for_each(|(a, &v)| *a += v / n as f32);
        }
        let (axes, _) = bitseek_codes::pca::principal_axes(dim, sample, &mean);
        let dev = candle_core::Device::Cpu;
        let normal = rand_distr::Normal::new(0f32, (1.0 / m as f32).sqrt() * 0.1).expect("std");
        let mut dec: Vec<f32> = (0..dim * m).map(|_| normal.sample(rng)).collect();
        if let Some(p) = start {
            // The rotation start's own decoder, α·Pᵀ (α: least squares of Pᵀ·sign(P·x) against
            // x − μ), so the term bites from the first step instead of waiting for D to grow.
            let (mut num, mut den) = (0f64, 0f64);
            for r in sample.chunks_exact(dim).take(2000) {
                let mut back = vec![0f32; dim];
                for i in 0..m {
                    let z: f32 = (0..dim).map(|j| p[i * dim + j] * r[j]).sum();
                    let s = if z >= 0.0 { 1.0 } else { -1.0 };
                    (0..dim).for_each(|j| back[j] += s * p[i * dim + j]);
                }
                num += (0..dim)
                    .map(|j| (back[j] * (r[j] - mean[j])) as f64)
                    .sum::<f64>();
                den += back.iter().map(|b| (b * b) as f64).sum::<f64>();
            }
            let alpha = if den > 0.0 { (num / den) as f32 } else { 0.0 };
            dec = (0..dim * m)
                .map(|k| alpha * p[(k % m) * dim + k / m])
                .collect();
        }
        Ok(Mimic {
            axes: Tensor::from_slice(&axes[..rank * dim], (rank, dim), &dev)?,
            mean: Tensor::from_vec(mean, (1, dim), &dev)?,
            decoder: candle_core::Var::from_tensor(&Tensor::from_vec(dec, (dim, m), &dev)?)?,
        })
    }

    /// `mean ‖E_r(D·code) − E_r(x − μ)‖²` over the rows of `codes` and the float `x` behind them.
    fn loss(&self, codes: &Tensor, x: &Tensor) -> Result<Tensor, TrainError> {
        let target = l2_normalize(x)?
            .broadcast_sub(&self.mean)?
            .matmul(&self.axes.t()?)?;
        let got = codes
            .matmul(&self.decoder.as_tensor().t()?)?
            .matmul(&self.axes.t()?)?;
        Ok((got - target)?.sqr()?.sum(1)?.mean_all()?)
    }
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

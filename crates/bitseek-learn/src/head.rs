//! A float head on a frozen embedding model (issue 16, tier 1): two residual MLPs,
//! `f(x) = normalise(x + W₂·relu(W₁·x + b₁) + b₂)`, one for questions and one for code, trained
//! with InfoNCE on (docstring, function) pairs, optionally RACS-augmented. The second layers start
//! at zero, so an untrained head is the model as shipped and training can only move away from it
//! where validation says it helps (the best validated head is kept, the start included).
//!
//! Hard negatives (issue 16): besides every in-batch negative, each pair can bring documents
//! mined for its question from the other training pairs (BM25, the `mine_negatives` example),
//! negatives of the questions only ([`crate::loss::info_nce_mined`]); [`train_head_mined`].
//!
//! The head's output is a float vector like the model's: learned codes are trained on it
//! afterwards (`bitseek train --mode pairs` on head outputs) and rescoring uses it directly.

use crate::augment::{expand_with, Op, RacsParams, OPS};
use crate::data::Pairs;
use crate::loss::{info_nce, info_nce_mined, LossParams, NearDuplicates};
use crate::model::{l2_normalize, rows_tensor};
use crate::Augment;
use bitseek_codes::quantizer::learned::Mlp;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::time::Instant;

/// Settings of [`train_head`].
#[derive(Clone, Debug)]
pub struct HeadConfig {
    /// Hidden width of each tower.
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub augment: Augment,
    pub racs: RacsParams,
    /// The RACS operations each augmented copy picks from (default: RACS's four, [`OPS`]).
    pub ops: Vec<Op>,
    /// Mined negatives drawn per pair and step in [`train_head_mined`] (from its list).
    pub mined_per_pair: usize,
    /// InfoNCE temperature and negatives per row (`usize::MAX`: every in-batch negative).
    pub loss: LossParams,
    /// Cosine above which two pairs are near-duplicates and never each other's negatives.
    pub near_duplicate: f32,
    /// Validations without improvement before stopping.
    pub patience: usize,
    pub seed: u64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            hidden: 256,
            epochs: 20,
            batch: 256,
            lr: 1e-3,
            weight_decay: 0.01,
            augment: Augment::None,
            racs: RacsParams::default(),
            ops: OPS.to_vec(),
            mined_per_pair: 1,
            loss: LossParams {
                temperature: 0.05,
                hard_negatives: usize::MAX,
            },
            near_duplicate: 0.95,
            patience: 3,
            seed: 0,
        }
    }
}

/// The trained head in plain Rust: what searching applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// Applied to questions.
    pub query: Mlp,
    /// Applied to code.
    pub doc: Mlp,
}

/// Which tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Query,
    Doc,
}

impl Head {
    /// The input (and output) width.
    pub fn dim(&self) -> usize {
        self.query.input
    }

    /// Head outputs of `rows` (row-major, `dim` wide), L2-normalised.
    pub fn apply(&self, side: Side, rows: &[f32]) -> Vec<f32> {
        let mlp = match side {
            Side::Query => &self.query,
            Side::Doc => &self.doc,
        };
        mlp.forward_normalized(rows)
    }
}

/// One tower's trainable weights.
struct Tower {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    dim: usize,
    hidden: usize,
}

impl Tower {
    fn new(dim: usize, hidden: usize, rng: &mut ChaCha8Rng) -> candle_core::Result<Tower> {
        let std = (2.0 / (dim + hidden) as f32).sqrt();
        let n = Normal::new(0.0f32, std).expect("positive std");
        let w1: Vec<f32> = (0..hidden * dim).map(|_| n.sample(rng)).collect();
        let dev = Device::Cpu;
        Ok(Tower {
            w1: Var::from_tensor(&Tensor::from_vec(w1, (hidden, dim), &dev)?)?,
            b1: Var::from_tensor(&Tensor::zeros(hidden, candle_core::DType::F32, &dev)?)?,
            // Zero: the untrained head is the identity (after normalising).
            w2: Var::from_tensor(&Tensor::zeros(
                (dim, hidden),
                candle_core::DType::F32,
                &dev,
            )?)?,
            b2: Var::from_tensor(&Tensor::zeros(dim, candle_core::DType::F32, &dev)?)?,
            dim,
            hidden,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
        ]
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = x
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        let y = h
            .matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())?;
        x + y
    }

    fn export(&self) -> candle_core::Result<Mlp> {
        let v = |t: &Var| t.as_tensor().flatten_all()?.to_vec1::<f32>();
        Ok(Mlp {
            input: self.dim,
            hidden: self.hidden,
            output: self.dim,
            w1: v(&self.w1)?,
            b1: v(&self.b1)?,
            w2: v(&self.w2)?,
            b2: v(&self.b2)?,
        })
    }
}

/// What training did, epoch by epoch.
#[derive(Clone, Debug)]
pub struct HeadTrained {
    pub head: Head,
    /// Validation MRR of the untrained head (the model as shipped).
    pub start_val_mrr: f64,
    /// (epoch, mean loss, validation MRR, seconds) of every epoch run.
    pub epochs: Vec<(usize, f64, f64, f64)>,
    pub best_epoch: usize,
    pub best_val_mrr: f64,
}

/// MRR of float cosine ranking of every validation query against every validation document
/// (the whole pool; ties count against the method), after the head.
pub fn head_mrr(head: &Head, val: &Pairs) -> f64 {
    let q = head.apply(Side::Query, &val.query);
    let d = head.apply(Side::Doc, &val.doc);
    float_mrr(&q, &d, val.dim)
}

/// MRR of row `i` of `q` finding row `i` of `d` by dot product among all rows of `d`.
pub fn float_mrr(q: &[f32], d: &[f32], dim: usize) -> f64 {
    let ranks = float_ranks(q, d, dim);
    ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / ranks.len().max(1) as f64
}

/// The rank (1 = first) of row `i` of `d` for row `i` of `q` by dot product among all rows of
/// `d`; ties count against it.
pub fn float_ranks(q: &[f32], d: &[f32], dim: usize) -> Vec<usize> {
    let n = q.len() / dim;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let qi = &q[i * dim..(i + 1) * dim];
        let dot = |j: usize| -> f32 {
            d[j * dim..(j + 1) * dim]
                .iter()
                .zip(qi)
                .map(|(a, b)| a * b)
                .sum()
        };
        let own = dot(i);
        out.push(1 + (0..n).filter(|&j| j != i && dot(j) >= own).count());
    }
    out
}

/// Trains the head on `train`, keeping the head with the best validation MRR on `val` (the
/// untrained identity included). `on` sees each finished epoch.
pub fn train_head(
    train: &Pairs,
    val: &Pairs,
    cfg: &HeadConfig,
    on: &mut dyn FnMut(usize, f64, f64, f64),
) -> candle_core::Result<HeadTrained> {
    train_head_mined(train, val, &[], cfg, on)
}

/// [`train_head`] with mined hard negatives: `mined[i]` lists training rows whose documents are
/// negatives for row `i`'s question (BM25 hits of other pairs, near-duplicates left out). Each
/// step draws `cfg.mined_per_pair` of them per pair; a drawn document that is another batch
/// row's own document, or a near-duplicate of that row, is not that row's negative. `mined`
/// empty: plain in-batch training, exactly [`train_head`].
pub fn train_head_mined(
    train: &Pairs,
    val: &Pairs,
    mined: &[Vec<u32>],
    cfg: &HeadConfig,
    on: &mut dyn FnMut(usize, f64, f64, f64),
) -> candle_core::Result<HeadTrained> {
    let dim = train.dim;
    if !mined.is_empty() && mined.len() != train.len() {
        return Err(candle_core::Error::Msg(format!(
            "mined negatives for {} pairs, but the training set has {}; mine them from the same pairs",
            mined.len(),
            train.len()
        )));
    }
    if let Some(&bad) = mined.iter().flatten().find(|&&r| r as usize >= train.len()) {
        return Err(candle_core::Error::Msg(format!(
            "a mined negative names row {bad} of a training set of {} pairs; mine them from the same pairs",
            train.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let tq = Tower::new(dim, cfg.hidden, &mut rng)?;
    let td = Tower::new(dim, cfg.hidden, &mut rng)?;
    let export = |tq: &Tower, td: &Tower| -> candle_core::Result<Head> {
        Ok(Head {
            query: tq.export()?,
            doc: td.export()?,
        })
    };
    let mut opt = AdamW::new(
        [tq.vars(), td.vars()].concat(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let start = export(&tq, &td)?;
    let start_val_mrr = head_mrr(&start, val);
    let (mut best, mut best_mrr, mut best_epoch, mut since) = (start, start_val_mrr, 0, 0);
    let n = train.len();
    let batch = cfg.batch.min(n).max(2);
    let mut epochs = Vec::new();
    for epoch in 1..=cfg.epochs {
        let t = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut steps = 0;
        for rows in order.chunks_exact(batch) {
            let b = train.select(rows);
            let near = NearDuplicates::find(&b.query, &b.doc, &b.ids, dim, cfg.near_duplicate);
            let drawn = if mined.is_empty() {
                Vec::new()
            } else {
                draw_mined(rows, mined, cfg.mined_per_pair, &mut rng)
            };
            let (q, d, groups) = match cfg.augment {
                Augment::None => (b.query.clone(), b.doc.clone(), b.ids.clone()),
                Augment::Racs { copies } => expand_with(
                    &cfg.ops, copies, &cfg.racs, &b.query, &b.doc, &b.ids, dim, &mut rng,
                ),
            };
            let hq = l2_normalize(&tq.forward(&rows_tensor(&q, dim)?)?)?;
            let hd = l2_normalize(&td.forward(&rows_tensor(&d, dim)?)?)?;
            let loss = if drawn.is_empty() {
                info_nce(&hq, &hd, &groups, &near, &cfg.loss)?
            } else {
                let m = train.select(&drawn);
                let allowed = mined_allowed(&b, rows, &m, &drawn, &groups, cfg.near_duplicate);
                let hm = l2_normalize(&td.forward(&rows_tensor(&m.doc, dim)?)?)?;
                info_nce_mined(&hq, &hd, &groups, &near, &hm, &allowed, &cfg.loss)?
            };
            opt.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            steps += 1;
        }
        let head = export(&tq, &td)?;
        let mrr = head_mrr(&head, val);
        let secs = t.elapsed().as_secs_f64();
        let loss = loss_sum / steps.max(1) as f64;
        on(epoch, loss, mrr, secs);
        epochs.push((epoch, loss, mrr, secs));
        if mrr > best_mrr {
            (best, best_mrr, best_epoch, since) = (head, mrr, epoch, 0);
        } else {
            since += 1;
            if since >= cfg.patience {
                break;
            }
        }
    }
    Ok(HeadTrained {
        head: best,
        start_val_mrr,
        epochs,
        best_epoch,
        best_val_mrr: best_mrr,
    })
}

/// `per_pair` mined rows for each of `rows` (all of a shorter list), drawn at random.
fn draw_mined(
    rows: &[usize],
    mined: &[Vec<u32>],
    per_pair: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut out = Vec::new();
    for &r in rows {
        out.extend(mined[r].choose_multiple(rng, per_pair).map(|&x| x as usize));
    }
    out
}

/// Whether batch row `i` (of the possibly augmented rows, in group `groups[i]`) may use mined
/// document `r`: not when it is the document of the pair the row comes from or another of
/// that pair's near-duplicates (query or document cosine above `threshold`), a case mining
/// against one pair cannot rule out for the others of the batch. Row-major, `groups.len() ×
/// drawn.len()`.
fn mined_allowed(
    batch: &Pairs,
    rows: &[usize],
    mined: &Pairs,
    drawn: &[usize],
    groups: &[u64],
    threshold: f32,
) -> Vec<bool> {
    let dim = batch.dim;
    let dot = |a: &[f32], i: usize, b: &[f32], j: usize| -> f32 {
        a[i * dim..(i + 1) * dim]
            .iter()
            .zip(&b[j * dim..(j + 1) * dim])
            .map(|(x, y)| x * y)
            .sum()
    };
    let e = drawn.len();
    // Per pair of the batch first, then spread over its copies.
    let per_pair: Vec<bool> = (0..rows.len())
        .flat_map(|p| {
            (0..e).map(move |r| {
                drawn[r] != rows[p]
                    && dot(&batch.doc, p, &mined.doc, r) <= threshold
                    && dot(&batch.query, p, &mined.query, r) <= threshold
                    && dot(&batch.query, p, &mined.doc, r) <= threshold
            })
        })
        .collect();
    let at: std::collections::HashMap<u64, usize> =
        batch.ids.iter().enumerate().map(|(p, &g)| (g, p)).collect();
    groups
        .iter()
        .flat_map(|g| {
            let p = at[g];
            per_pair[p * e..(p + 1) * e].iter().copied()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Pairs whose document is a fixed linear distortion of the query plus noise: the float
    /// model as shipped (identity) ranks them poorly, a trained head can undo the distortion.
    fn distorted(n: usize, dim: usize, seed: u64) -> Pairs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut perm: Vec<usize> = (0..dim).collect();
        // The same permutation for every seed: the distortion is the task, the rows are data.
        perm.shuffle(&mut ChaCha8Rng::seed_from_u64(99));
        let g = Normal::new(0.0f32, 1.0).unwrap();
        let (mut q, mut d) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let x: Vec<f32> = (0..dim).map(|_| g.sample(&mut rng)).collect();
            q.extend_from_slice(&x);
            d.extend(perm.iter().map(|&p| x[p] + 0.3 * rng.gen::<f32>()));
        }
        Pairs::new(dim, q, d).unwrap()
    }

    #[test]
    fn untrained_head_is_the_identity() {
        let p = distorted(50, 16, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let head = Head {
            query: Tower::new(16, 8, &mut rng).unwrap().export().unwrap(),
            doc: Tower::new(16, 8, &mut rng).unwrap().export().unwrap(),
        };
        let out = head.apply(Side::Query, &p.query);
        for (a, b) in out.iter().zip(&p.query) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn training_learns_a_distortion_and_plain_rust_matches_candle() {
        let (train, val) = (distorted(1024, 16, 2), distorted(200, 16, 3));
        let cfg = HeadConfig {
            hidden: 32,
            epochs: 30,
            batch: 128,
            lr: 3e-3,
            patience: 30,
            ..Default::default()
        };
        let out = train_head(&train, &val, &cfg, &mut |_, _, _, _| {}).unwrap();
        assert!(
            out.best_val_mrr > out.start_val_mrr + 0.3,
            "{} -> {}",
            out.start_val_mrr,
            out.best_val_mrr
        );
        assert!((head_mrr(&out.head, &val) - out.best_val_mrr).abs() < 1e-9);
        // The plain-Rust tower against candle's forward pass on the same weights.
        let t = Tower {
            w1: Var::new(out.head.doc.w1.as_slice(), &Device::Cpu).unwrap(),
            b1: Var::new(out.head.doc.b1.as_slice(), &Device::Cpu).unwrap(),
            w2: Var::new(out.head.doc.w2.as_slice(), &Device::Cpu).unwrap(),
            b2: Var::new(out.head.doc.b2.as_slice(), &Device::Cpu).unwrap(),
            dim: 16,
            hidden: 32,
        };
        let t = Tower {
            w1: Var::from_tensor(&t.w1.as_tensor().reshape((32, 16)).unwrap()).unwrap(),
            w2: Var::from_tensor(&t.w2.as_tensor().reshape((16, 32)).unwrap()).unwrap(),
            ..t
        };
        let x = rows_tensor(&val.doc, 16).unwrap();
        let want = l2_normalize(&t.forward(&x).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got = out.head.apply(Side::Doc, &val.doc);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn a_mined_document_is_no_negative_of_its_own_pair_or_its_near_duplicates() {
        let mut p = distorted(4, 16, 5);
        // Pair 3 is pair 1 again (the same docstring and code copied elsewhere).
        let dim = p.dim;
        let (q1, d1) = (p.query[dim..2 * dim].to_vec(), p.doc[dim..2 * dim].to_vec());
        p.query[3 * dim..].copy_from_slice(&q1);
        p.doc[3 * dim..].copy_from_slice(&d1);
        let norm = |v: &mut Vec<f32>| {
            for r in v.chunks_mut(dim) {
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                r.iter_mut().for_each(|x| *x /= n);
            }
        };
        norm(&mut p.query);
        norm(&mut p.doc);
        let rows = [0, 1];
        let batch = p.select(&rows);
        let drawn = [1, 2, 3];
        let mined = p.select(&drawn);
        // Batch rows with one augmented copy each: groups 0, 1, 0, 1.
        let groups = [0, 1, 0, 1];
        let ok = mined_allowed(&batch, &rows, &mined, &drawn, &groups, 0.95);
        assert_eq!(
            ok,
            [
                [true, true, true],   // pair 0: every mined document is another's
                [false, true, false], // pair 1: its own document, and pair 3 = its copy
                [true, true, true],
                [false, true, false],
            ]
            .concat()
        );
    }

    #[test]
    fn training_with_mined_negatives_learns_and_refuses_foreign_lists() {
        let (train, val) = (distorted(512, 16, 6), distorted(200, 16, 7));
        let cfg = HeadConfig {
            hidden: 32,
            epochs: 30,
            batch: 128,
            lr: 3e-3,
            patience: 30,
            mined_per_pair: 2,
            ..Default::default()
        };
        // Any other rows stand in for mined ones here; the loss only sees them as negatives.
        let mined: Vec<Vec<u32>> = (0..512u32)
            .map(|i| vec![(i + 1) % 512, (i + 7) % 512, (i + 100) % 512])
            .collect();
        let out = train_head_mined(&train, &val, &mined, &cfg, &mut |_, _, _, _| {}).unwrap();
        assert!(
            out.best_val_mrr > out.start_val_mrr + 0.3,
            "{} -> {}",
            out.start_val_mrr,
            out.best_val_mrr
        );
        let short = train_head_mined(&train, &val, &mined[1..], &cfg, &mut |_, _, _, _| {});
        assert!(short.unwrap_err().to_string().contains("511 pairs"));
        let mut far = mined.clone();
        far[0] = vec![9999];
        let bad = train_head_mined(&train, &val, &far, &cfg, &mut |_, _, _, _| {});
        assert!(bad.unwrap_err().to_string().contains("row 9999"));
    }
}

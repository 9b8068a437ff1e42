//! The training objective (BEBR, methods.md §1.3): InfoNCE on the cosine of the codes with
//! temperature 0.05, each positive scored against the `k` hardest in-batch negatives, in both
//! directions (queries → documents and documents → queries). Rows that share a group id (a pair
//! and its augmented copies, or duplicates) are never negatives of each other; every same-group
//! pair is a positive with its own softmax row (RACS's multi-positive form, methods.md §2.3).
//! Near-duplicate pairs ([`NearDuplicates`]: the same docstring on two functions, code copied
//! between modules) are never negatives either: with hardest-k mining they would be the first
//! negatives picked, and the loss would push apart exactly the things a search should find together.

use crate::model::l2_normalize;
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;

/// Loss settings.
#[derive(Clone, Copy, Debug)]
pub struct LossParams {
    pub temperature: f32,
    /// Hardest negatives per row.
    pub hard_negatives: usize,
}

impl Default for LossParams {
    fn default() -> Self {
        LossParams {
            temperature: 0.05,
            hard_negatives: 5,
        }
    }
}

/// Which groups of a batch are near-duplicates of each other, found from the float inputs: two
/// pairs whose queries, or whose documents, have a cosine above the threshold, or one pair's query
/// and the other's document (in `neighbors` mode a vector is often another row's positive).
#[derive(Clone, Debug, Default)]
pub struct NearDuplicates {
    index: HashMap<u64, usize>,
    near: Vec<bool>,
}

impl NearDuplicates {
    /// Compares every pair of the batch (`ids[i]` owns row `i` of the L2-normalised `query` and
    /// `doc`); `threshold ≥ 1` finds none.
    pub fn find(query: &[f32], doc: &[f32], ids: &[u64], dim: usize, threshold: f32) -> Self {
        let n = ids.len();
        let mut near = vec![false; n * n];
        if threshold < 1.0 {
            for (a, b) in [(query, query), (doc, doc), (query, doc)] {
                let cos = products(a, b, n, dim);
                for i in 0..n {
                    for j in 0..n {
                        if cos[i * n + j] > threshold {
                            near[i * n + j] = true;
                            near[j * n + i] = true;
                        }
                    }
                }
            }
        }
        let index = ids.iter().enumerate().map(|(i, &g)| (g, i)).collect();
        NearDuplicates { index, near }
    }

    /// Pairs of groups marked near (for reports and tests).
    pub fn count(&self) -> usize {
        let n = self.index.len();
        (0..n)
            .map(|i| (i + 1..n).filter(|&j| self.near[i * n + j]).count())
            .sum()
    }

    /// Batch positions of `groups` (`None` where a group is unknown: never near anything).
    fn positions(&self, groups: &[u64]) -> Vec<Option<usize>> {
        groups.iter().map(|g| self.index.get(g).copied()).collect()
    }

    fn is_near(&self, a: Option<usize>, b: Option<usize>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => self.near[a * self.index.len() + b],
            _ => false,
        }
    }
}

/// `A·Bᵀ` of `n` row-major rows each.
fn products(a: &[f32], b: &[f32], n: usize, dim: usize) -> Vec<f32> {
    assert!(a.len() >= n * dim && b.len() >= n * dim);
    let mut out = vec![0f32; n * n];
    // SAFETY: a and b hold n×dim values and out n×n, matching the strides given.
    unsafe {
        matrixmultiply::sgemm(
            n,
            dim,
            n,
            1.0,
            a.as_ptr(),
            dim as isize,
            1,
            b.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    out
}

/// Symmetric InfoNCE between code batches `a` and `b` (`n × m`, row `i` of each in group
/// `groups[i]`); groups `near` marks are never each other's negatives.
pub fn info_nce(
    a: &Tensor,
    b: &Tensor,
    groups: &[u64],
    near: &NearDuplicates,
    p: &LossParams,
) -> Result<Tensor> {
    let s = l2_normalize(a)?
        .matmul(&l2_normalize(b)?.t()?)?
        .affine(1.0 / p.temperature as f64, 0.0)?;
    let forward = one_way(&s, groups, near, p)?;
    let backward = one_way(&s.t()?.contiguous()?, groups, near, p)?;
    (forward + backward)? * 0.5
}

/// [`info_nce`] with mined negatives (issue 16: BM25-mined hard negatives): `mined` holds `e`
/// extra documents that are negatives of the queries only, as DPR adds BM25 negatives (the
/// query → document direction; document → query is [`info_nce`]'s). Row `i` of `a` may use mined
/// row `r` only where `allowed[i * e + r]`: the caller masks mined copies of a batch row's own
/// document and of its near-duplicates, which the loss cannot tell from the vectors alone.
/// Mined and in-batch negatives compete for the same `p.hard_negatives` places.
pub fn info_nce_mined(
    a: &Tensor,
    b: &Tensor,
    groups: &[u64],
    near: &NearDuplicates,
    mined: &Tensor,
    allowed: &[bool],
    p: &LossParams,
) -> Result<Tensor> {
    let (a, b, m) = (l2_normalize(a)?, l2_normalize(b)?, l2_normalize(mined)?);
    let inv = 1.0 / p.temperature as f64;
    let s = a.matmul(&b.t()?)?.affine(inv, 0.0)?;
    let sm = a.matmul(&m.t()?)?.affine(inv, 0.0)?;
    let forward = one_way_mined(&s, &sm, groups, near, allowed, p)?;
    let backward = one_way(&s.t()?.contiguous()?, groups, near, p)?;
    (forward + backward)? * 0.5
}

/// [`one_way`] over the in-batch columns of `s` (`n × n`) and the mined columns `sm` (`n × e`),
/// rows with fewer negatives than others padded with masked entries.
fn one_way_mined(
    s: &Tensor,
    sm: &Tensor,
    groups: &[u64],
    near: &NearDuplicates,
    allowed: &[bool],
    p: &LossParams,
) -> Result<Tensor> {
    let n = groups.len();
    let e = sm.dim(1)?;
    if allowed.len() != n * e {
        return Err(candle_core::Error::Msg(format!(
            "{} mined-negative flags for {n} rows and {e} mined documents; expected {}",
            allowed.len(),
            n * e
        )));
    }
    let full = Tensor::cat(&[s, sm], 1)?;
    let values = full.to_vec2::<f32>()?;
    let at = near.positions(groups);
    let mut by_group: HashMap<u64, Vec<u32>> = HashMap::new();
    for (j, &g) in groups.iter().enumerate() {
        by_group.entry(g).or_default().push(j as u32);
    }
    let per = by_group[&groups[0]].len();
    let k = p.hard_negatives.min(n.saturating_sub(per) + e).max(1);
    let mut pos = Vec::with_capacity(n * per);
    let mut chosen: Vec<Vec<u32>> = Vec::with_capacity(n);
    for (i, row) in values.iter().enumerate() {
        let mine = &by_group[&groups[i]];
        if mine.len() != per {
            return Err(candle_core::Error::Msg(format!(
                "group {} has {} rows but group {} has {per}; every pair needs the same number of copies",
                groups[i],
                mine.len(),
                groups[0]
            )));
        }
        pos.extend_from_slice(mine);
        let mut order: Vec<u32> = (0..n as u32)
            .filter(|&j| groups[j as usize] != groups[i] && !near.is_near(at[i], at[j as usize]))
            .chain(
                (0..e)
                    .filter(|&r| allowed[i * e + r])
                    .map(|r| (n + r) as u32),
            )
            .collect();
        let take = k.min(order.len());
        if take > 0 && take < order.len() {
            order.select_nth_unstable_by(take - 1, |&x, &y| {
                row[y as usize].total_cmp(&row[x as usize])
            });
        }
        order.truncate(take);
        chosen.push(order);
    }
    let width = chosen.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let (mut neg, mut mask) = (Vec::with_capacity(n * width), Vec::with_capacity(n * width));
    for row in &chosen {
        for c in 0..width {
            // Padding points at column 0 and is masked out of the sum.
            neg.push(row.get(c).copied().unwrap_or(0));
            mask.push(if c < row.len() { 0f32 } else { -1e4 });
        }
    }
    let dev = Device::Cpu;
    let pos = full.gather(&Tensor::from_vec(pos, (n, per), &dev)?, 1)?;
    let neg = full
        .gather(&Tensor::from_vec(neg, (n, width), &dev)?, 1)?
        .add(&Tensor::from_vec(mask, (n, width), &dev)?)?;
    let neg_lse = neg.log_sum_exp(1)?.unsqueeze(1)?;
    let x = neg_lse.broadcast_sub(&pos)?;
    let softplus = (x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    softplus.mean_all()
}

/// Mean over positives `(i, j)` of `−s_ij + log(e^s_ij + Σ_hard e^s_in)` for one direction.
fn one_way(s: &Tensor, groups: &[u64], near: &NearDuplicates, p: &LossParams) -> Result<Tensor> {
    let n = groups.len();
    let at = near.positions(groups);
    let values = s.to_vec2::<f32>()?;
    // Positives: every same-group column; all rows of a batch have as many (copies + 1).
    let mut by_group: std::collections::HashMap<u64, Vec<u32>> = Default::default();
    for (j, &g) in groups.iter().enumerate() {
        by_group.entry(g).or_default().push(j as u32);
    }
    let per = by_group[&groups[0]].len();
    let k = p.hard_negatives.min(n.saturating_sub(per)).max(1);
    let mut pos = Vec::with_capacity(n * per);
    let mut neg = Vec::with_capacity(n * k);
    let mut order: Vec<u32> = Vec::with_capacity(n);
    for (i, row) in values.iter().enumerate() {
        let mine = &by_group[&groups[i]];
        if mine.len() != per {
            return Err(candle_core::Error::Msg(format!(
                "group {} has {} rows but group {} has {per}; every pair needs the same number of copies",
                groups[i],
                mine.len(),
                groups[0]
            )));
        }
        pos.extend_from_slice(mine);
        order.clear();
        order.extend(
            (0..n as u32).filter(|&j| {
                groups[j as usize] != groups[i] && !near.is_near(at[i], at[j as usize])
            }),
        );
        if order.is_empty() {
            // One group only: no negatives exist; mask with the positive itself (zero loss).
            neg.extend(std::iter::repeat_n(mine[0], k));
            continue;
        }
        let take = k.min(order.len());
        order.select_nth_unstable_by(take - 1, |&x, &y| {
            row[y as usize].total_cmp(&row[x as usize])
        });
        neg.extend_from_slice(&order[..take]);
        // Pad (tiny batches) by repeating the hardest.
        let hardest = order[0];
        neg.extend(std::iter::repeat_n(hardest, k - take));
    }
    let dev = Device::Cpu;
    let pos = s.gather(&Tensor::from_vec(pos, (n, per), &dev)?, 1)?;
    let neg = s.gather(&Tensor::from_vec(neg, (n, k), &dev)?, 1)?;
    let neg_lse = neg.log_sum_exp(1)?.unsqueeze(1)?;
    // −pos + log(e^pos + e^lse) = softplus(lse − pos), computed stably.
    let x = neg_lse.broadcast_sub(&pos)?;
    let softplus = (x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    softplus.mean_all()
}

/// Listwise distillation of the float similarity ranking (label-free training): for each query
/// row `i`, the teacher's distribution `softmax(cos(xᵢ, xⱼ)/τ)` over the candidates `j` (in-batch
/// rows and their mined float neighbours) and the student's `softmax(scale·ŝᵢⱼ)` over the same
/// candidates, where `ŝ` is the score the index ranks by (the cosine of the query's float
/// relaxation and the candidate's code); the loss is the mean cross-entropy `−Σⱼ pᵢⱼ log qᵢⱼ`
/// (the KL divergence up to the teacher's entropy). Candidates whose float cosine with the query
/// is above `1 − 1e-5` (the query itself, or a copy of it) are left out of both sides.
///
/// `student` and `teacher` are `n × c` score matrices; `scale` is the student's inverse
/// temperature (a learned scalar: code cosines are compressed next to float ones).
pub fn distill(student: &Tensor, teacher: &Tensor, scale: &Tensor, tau: f32) -> Result<Tensor> {
    let t = teacher.to_vec2::<f32>()?;
    let (n, c) = (t.len(), t.first().map_or(0, Vec::len));
    let mut mask = vec![0f32; n * c];
    let mut p = vec![0f32; n * c];
    for (i, row) in t.iter().enumerate() {
        let keep = |v: f32| v < 1.0 - 1e-5;
        let top = row
            .iter()
            .copied()
            .filter(|&v| keep(v))
            .fold(f32::NEG_INFINITY, f32::max);
        let mut z = 0f32;
        for (j, &v) in row.iter().enumerate() {
            if keep(v) {
                let e = ((v - top) / tau).exp();
                p[i * c + j] = e;
                z += e;
            } else {
                mask[i * c + j] = -1e4;
            }
        }
        if z > 0.0 {
            p[i * c..(i + 1) * c].iter_mut().for_each(|v| *v /= z);
        }
    }
    let dev = student.device();
    let mask = Tensor::from_vec(mask, (n, c), dev)?;
    let p = Tensor::from_vec(p, (n, c), dev)?;
    let logits = student.broadcast_mul(scale)?.add(&mask)?;
    let lse = logits.log_sum_exp(1)?.unsqueeze(1)?;
    let logq = logits.broadcast_sub(&lse)?;
    (p * logq)?.sum(1)?.neg()?.mean_all()
}

//! The training objective (BEBR, methods.md §1.3): InfoNCE on the cosine of the codes with
//! temperature 0.05, each positive scored against the `k` hardest in-batch negatives, in both
//! directions (queries → documents and documents → queries). Rows that share a group id (a pair
//! and its augmented copies, or duplicates) are never negatives of each other; every same-group
//! pair is a positive with its own softmax row (RACS's multi-positive form, methods.md §2.3).

use crate::model::l2_normalize;
use candle_core::{Device, Result, Tensor};

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

/// Symmetric InfoNCE between code batches `a` and `b` (`n × m`, row `i` of each in group
/// `groups[i]`).
pub fn info_nce(a: &Tensor, b: &Tensor, groups: &[u64], p: &LossParams) -> Result<Tensor> {
    let s = l2_normalize(a)?
        .matmul(&l2_normalize(b)?.t()?)?
        .affine(1.0 / p.temperature as f64, 0.0)?;
    let forward = one_way(&s, groups, p)?;
    let backward = one_way(&s.t()?.contiguous()?, groups, p)?;
    (forward + backward)? * 0.5
}

/// Mean over positives `(i, j)` of `−s_ij + log(e^s_ij + Σ_hard e^s_in)` for one direction.
fn one_way(s: &Tensor, groups: &[u64], p: &LossParams) -> Result<Tensor> {
    let n = groups.len();
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
        order.extend((0..n as u32).filter(|&j| groups[j as usize] != groups[i]));
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

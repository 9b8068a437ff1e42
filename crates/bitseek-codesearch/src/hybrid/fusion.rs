//! Reciprocal rank fusion (Cormack et al. 2009) of the semantic and lexical legs: a row gets
//! `Σ 1/(RRF_K + position)` over the ranked lists it is in, so agreement between the legs wins
//! and neither leg's score scale matters.
//!
//! [`fuse_legs`] is the fusion `bitseek search` runs; [`searched_rank`] and [`rrf_rank`] are the
//! ranks `bitseek eval-code --hybrid` reports for it and for fusion over whole score rows.

use bitseek_index::retrieval::{rank_of, top_candidates};
use std::collections::HashMap;

/// Reciprocal-rank-fusion constant (Cormack et al. 2009).
pub const RRF_K: f64 = 60.0;

/// Positions (1-based) of every row when `scores` is sorted best first, ties by lower row.
pub fn positions(scores: &[f32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    let mut pos = vec![0u32; scores.len()];
    for (p, &r) in order.iter().enumerate() {
        pos[r as usize] = p as u32 + 1;
    }
    pos
}

/// Fused scores `Σ 1/(k + position)` over the legs' positions ([`positions`]), into `out`.
pub fn rrf_scores(legs: &[&[u32]], out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = legs
            .iter()
            .map(|p| 1.0 / (RRF_K + p[i] as f64))
            .sum::<f64>() as f32;
    }
}

/// How deep each leg's ranked list goes when `bitseek search` fuses the semantic and lexical legs.
pub const FUSION_DEPTH: usize = 100;

/// Reciprocal rank fusion of ranked lists of rows (each best first, a row at most once per list,
/// often truncated): every row in any list gets `Σ 1/(RRF_K + position)` over the lists it is in
/// (positions 1-based). Best first; ties go to the lower row.
pub fn fuse_ranked(legs: &[&[u32]]) -> Vec<(u32, f32)> {
    let weighted: Vec<(&[u32], f64)> = legs.iter().map(|&l| (l, 1.0)).collect();
    fuse_weighted(&weighted)
}

/// [`fuse_ranked`] with a weight per list: a row gets `Σ weight/(RRF_K + position)`.
pub fn fuse_weighted(legs: &[(&[u32], f64)]) -> Vec<(u32, f32)> {
    let mut fused: HashMap<u32, f64> = HashMap::new();
    for &(leg, weight) in legs {
        for (p, &row) in leg.iter().enumerate() {
            *fused.entry(row).or_default() += weight / (RRF_K + (p + 1) as f64);
        }
    }
    let mut out: Vec<(u32, f64)> = fused.into_iter().collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(r, s)| (r, s as f32)).collect()
}

/// Rank of `own` under reciprocal rank fusion of the legs' score rows (each higher-is-better):
/// positions per leg with ties by lower row, fused by [`rrf_scores`], then [`rank_of`] (ties
/// against).
pub fn rrf_rank(legs: &[&[f32]], own: usize) -> usize {
    let pos: Vec<Vec<u32>> = legs.iter().map(|s| positions(s)).collect();
    let refs: Vec<&[u32]> = pos.iter().map(Vec::as_slice).collect();
    let mut fused = vec![0f32; legs.first().map_or(0, |l| l.len())];
    rrf_scores(&refs, &mut fused);
    rank_of(&fused, own)
}

/// The fused ranking `bitseek search` returns: the semantic leg's rows (`semantic`, best first)
/// and the best `depth` rows of the lexical scores (`lexical`, one per row, higher is better) that
/// share a word with the question (score > 0), fused by [`fuse_weighted`], the lexical leg
/// weighted `lexical_weight` against the semantic leg's 1 ([`crate::hybrid::Ranking`]'s
/// `lexical_weight`). `scratch` is reused between calls.
pub fn fuse_legs(
    semantic: &[u32],
    lexical: &[f32],
    depth: usize,
    lexical_weight: f64,
    scratch: &mut Vec<f32>,
) -> Vec<(u32, f32)> {
    let mut lex = top_candidates(lexical, depth, scratch);
    lex.retain(|&r| lexical[r as usize] > 0.0);
    fuse_weighted(&[(semantic, 1.0), (&lex, lexical_weight)])
}

/// Rank of `own` under [`fuse_legs`] as `bitseek search` runs it: the best [`FUSION_DEPTH`] rows
/// of the semantic score row (here float32) fused with the lexical leg. Rows outside both lists
/// follow in semantic order (ties count against `own`, as in [`rank_of`]).
pub fn searched_rank(
    semantic: &[f32],
    lexical: &[f32],
    own: usize,
    lexical_weight: f64,
    scratch: &mut Vec<f32>,
) -> usize {
    let sem = top_candidates(semantic, FUSION_DEPTH, scratch);
    let fused = fuse_legs(&sem, lexical, FUSION_DEPTH, lexical_weight, scratch);
    if let Some(p) = fused.iter().position(|&(r, _)| r as usize == own) {
        return p + 1;
    }
    let s = semantic[own];
    let ahead = fused
        .iter()
        .filter(|&&(r, _)| semantic[r as usize] >= s)
        .count();
    fused.len() + rank_of(semantic, own) - ahead
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_fuses_positions() {
        // Leg A ranks 0, 1, 2; leg B ranks 2, 1, 0. Rows 0 and 2 get 1/61 + 1/63 = 0.032266,
        // row 1 gets 2/62 = 0.032258: second twice loses to first plus third.
        let a = [0.9, 0.5, 0.1];
        let b = [0.1, 0.5, 0.9];
        assert_eq!(positions(&a), [1, 2, 3]);
        assert_eq!(positions(&b), [3, 2, 1]);
        assert_eq!(rrf_rank(&[&a, &b], 1), 3);
        // Rows 0 and 2 tie: each counts against the other.
        assert_eq!(rrf_rank(&[&a, &b], 0), 2);
        assert_eq!(rrf_rank(&[&a, &b], 2), 2);
        // Ties inside a leg are broken by row for the positions.
        assert_eq!(positions(&[0.5, 0.5, 0.7]), [2, 3, 1]);
    }

    #[test]
    fn fused_lists_reward_agreement_and_keep_one_sided_rows() {
        // Row 7 is second in both lists and beats row 1, first in one list only.
        let fused = fuse_ranked(&[&[1, 7, 3], &[9, 7]]);
        let rows: Vec<u32> = fused.iter().map(|f| f.0).collect();
        assert_eq!(rows, [7, 1, 9, 3]);
        let expect = 2.0 / (RRF_K + 2.0);
        assert!((fused[0].1 as f64 - expect).abs() < 1e-6);
        // Equal fused scores go to the lower row.
        let tie = fuse_ranked(&[&[5], &[2]]);
        assert_eq!(tie.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 5]);
        assert!(fuse_ranked(&[]).is_empty());
    }

    #[test]
    fn search_fusion_keeps_wordless_rows_out_of_the_lexical_leg() {
        // Semantic order 0, 1, 2, 3; only row 3 shares a word with the question.
        let sem = [0.9, 0.8, 0.7, 0.1];
        let lex = [0.0, 0.0, 0.0, 2.0];
        let rows = |f: Vec<(u32, f32)>| f.into_iter().map(|f| f.0).collect::<Vec<_>>();
        // Rows 0 and 3 tie at 1/61 (the lower row first); wordless rows 1 and 2 stay out of the
        // lexical leg, so row 2 only comes in through the semantic list.
        assert_eq!(
            rows(fuse_legs(&[0, 2], &lex, 2, 1.0, &mut Vec::new())),
            [0, 3, 2]
        );
        let mut scratch = Vec::new();
        assert_eq!(searched_rank(&sem, &lex, 3, 1.0, &mut scratch), 1);
        assert_eq!(searched_rank(&sem, &lex, 0, 1.0, &mut scratch), 2);
        // A light lexical leg moves row 3 up only as far as its weight reaches: 0.01/61 does
        // not make up 1/63 - 1/64 (row 2), 0.05/61 passes row 0's 1/61 - 1/64.
        assert_eq!(searched_rank(&sem, &lex, 3, 0.01, &mut scratch), 4);
        assert_eq!(searched_rank(&sem, &lex, 3, 0.0, &mut scratch), 4);
        assert_eq!(searched_rank(&sem, &lex, 3, 0.05, &mut scratch), 1);
        // Past both lists, rows keep their semantic rank.
        let sem: Vec<f32> = (0..150).map(|i| -(i as f32)).collect();
        let lex = vec![0f32; 150];
        assert_eq!(searched_rank(&sem, &lex, 120, 1.0, &mut scratch), 121);
    }
}

//! A learned rotation for RaBitQ: the codes keep RaBitQ's estimator and per-vector factors
//! (`⟨x, μ⟩`, `‖x − μ‖`, `⟨x̄, o⟩`), only the rotation `P` of `sign(P·(x − μ)/‖x − μ‖)` is trained,
//! without labels.
//!
//! Why this objective: for a 1-bit code of a rotated unit residual `o' = P·o`, RaBitQ's quality
//! factor is `⟨x̄, o⟩ = ‖P·o‖₁/√D`, and the estimator's error shrinks as it grows (its bound is
//! `√(1 − ⟨x̄,o⟩²)/⟨x̄,o⟩`). Maximising `Σ ‖P·oᵢ‖₁` over orthogonal `P` is exactly iterative
//! quantization (ITQ, Gong & Lazebnik, CVPR 2011): alternately fix the signs `B = sign(O·Pᵀ)` and
//! solve the orthogonal Procrustes problem `P = polar(Bᵀ·O)`. It starts at RaBitQ's own random
//! rotation, so iteration 0 *is* RaBitQ, and validation by raw recall@10 on held-out vectors keeps
//! the best iterate (the start included), so the result is never below RaBitQ on validation.
//!
//! The learned `P` is stored where RaBitQ already stores its rotation (the index's `q.rotation`
//! section), so indexes, kernels and scoring are unchanged.

use crate::eval::recall_at;
use bitseek_codes::pca::jacobi_eigen;
use bitseek_codes::quantizer::{FitOptions, Lattice, Quantizer, QueryMode};
use bitseek_codes::rotation::rotate_rows;

/// Options of [`learn_rotation`].
#[derive(Clone, Debug)]
pub struct RotationConfig {
    /// ITQ iterations (each one sign pass and one Procrustes solve).
    pub iters: usize,
    /// Validate every this many iterations (and after the last).
    pub val_every: usize,
    /// Fit options of the start (its seed draws RaBitQ's rotation).
    pub fit: FitOptions,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            iters: 50,
            val_every: 5,
            fit: FitOptions::default(),
        }
    }
}

/// The result of [`learn_rotation`].
#[derive(Clone, Debug)]
pub struct LearnedRotation {
    /// `D' × D'` orthogonal, row-major: the best iterate on validation.
    pub rotation: Vec<f32>,
    /// Validation raw recall@10 of the start (RaBitQ's random rotation) and of the kept rotation.
    pub start_val: f64,
    pub best_val: f64,
    /// Iteration of the kept rotation (0 = the start).
    pub best_iter: usize,
    /// Mean `⟨x̄, o⟩` on the training rows at the start and for the kept rotation.
    pub start_quality: f64,
    pub best_quality: f64,
}

/// `C = A·B` in `f64` (`m × k` by `k × n`), with the strides given (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn dgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    (rsa, csa): (usize, usize),
    b: &[f64],
    (rsb, csb): (usize, usize),
) -> Vec<f64> {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(m > 0 && k > 0 && n > 0);
    assert!(a.len() > last(m, k, rsa, csa) && b.len() > last(k, n, rsb, csb));
    let mut c = vec![0f64; m * n];
    // SAFETY: every index the product reads lies inside `a` and `b` (checked above) and `c` is
    // `m × n` row-major, borrowed mutably, aliasing neither.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

/// The orthogonal polar factor of the square `m` (`n × n`, row-major): `U·Wᵀ` for `m = U·S·Wᵀ`,
/// computed as `m·W·S⁻¹·Wᵀ` from the eigendecomposition `mᵀm = W·S²·Wᵀ`.
fn polar(n: usize, m: &[f64]) -> Vec<f64> {
    let mtm = dgemm(n, n, n, m, (1, n), m, (n, 1));
    let (values, w) = jacobi_eigen(n, mtm);
    let top = values.iter().cloned().fold(0f64, f64::max);
    // W·S⁻¹, singular values floored so a rank-deficient m stays finite.
    let inv: Vec<f64> = values
        .iter()
        .map(|&v| 1.0 / v.max(top * 1e-12).max(f64::MIN_POSITIVE).sqrt())
        .collect();
    let ws: Vec<f64> = w.iter().enumerate().map(|(i, &x)| x * inv[i % n]).collect();
    let t = dgemm(n, n, n, &ws, (n, 1), &w, (1, n));
    dgemm(n, n, n, m, (n, 1), &t, (n, 1))
}

/// Centred, zero-padded, unit residuals `o = (x − μ)/‖x − μ‖` (`n × padded`).
fn unit_residuals(dim: usize, padded: usize, mean: &[f32], rows: &[f32]) -> Vec<f32> {
    let n = rows.len() / dim;
    let mut out = vec![0f32; n * padded];
    for (x, o) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(padded)) {
        for ((o, &x), &m) in o.iter_mut().zip(x).zip(mean) {
            *o = x - m;
        }
        let norm = o
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            o.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
    }
    out
}

/// Raw recall@10 of `val_queries` over `val_docs` with RaBitQ fitted on `val_docs` (as an index
/// build would) but rotated by the rotation given: how both learners validate.
fn validator<'a>(
    dim: usize,
    val_queries: &'a [f32],
    val_docs: &'a [f32],
    fit: FitOptions,
) -> impl Fn(&[f32]) -> f64 + 'a {
    let val_lattice = Lattice::fit(dim, 1, val_docs, fit);
    move |rotation: &[f32]| -> f64 {
        let q = Quantizer::Lattice(Lattice {
            rotation: rotation.to_vec(),
            ..val_lattice.clone()
        });
        recall_at(
            &q,
            val_queries,
            val_docs,
            dim,
            10,
            QueryMode::Asymmetric,
            None,
            &[],
        )
        .raw
    }
}

/// Learns RaBitQ's rotation on `rows` (`dim` floats each) by ITQ, validated by raw recall@10 of
/// `val_queries` over `val_docs` (all L2-normalised; RaBitQ fitted on `val_docs` as an index build
/// would, default 4-bit asymmetric query). `on_check(iter, quality, val_recall)` reports progress.
pub fn learn_rotation(
    dim: usize,
    rows: &[f32],
    val_queries: &[f32],
    val_docs: &[f32],
    cfg: &RotationConfig,
    on_check: &mut dyn FnMut(usize, f64, f64),
) -> LearnedRotation {
    let start = Lattice::fit(dim, 1, rows, cfg.fit);
    let padded = start.padded;
    let validate = validator(dim, val_queries, val_docs, cfg.fit);
    let o = unit_residuals(dim, padded, &start.mean, rows);
    let n = o.len() / padded;
    let o64: Vec<f64> = o.iter().map(|&v| v as f64).collect();
    let mut rotated = vec![0f32; o.len()];
    // Mean ⟨x̄, o⟩ = mean ‖P·o‖₁/√D' of the current rotation; fills `rotated`.
    let quality = |p: &[f32], rotated: &mut [f32]| -> f64 {
        rotate_rows(p, padded, &o, rotated);
        rotated.iter().map(|v| v.abs() as f64).sum::<f64>()
            / (n.max(1) as f64 * (padded as f64).sqrt())
    };
    let mut p = start.rotation.clone();
    let start_quality = quality(&p, &mut rotated);
    let start_val = validate(&p);
    on_check(0, start_quality, start_val);
    let mut best = LearnedRotation {
        rotation: p.clone(),
        start_val,
        best_val: start_val,
        best_iter: 0,
        start_quality,
        best_quality: start_quality,
    };
    for it in 1..=cfg.iters {
        // M = Bᵀ·O with B = sign(O·Pᵀ) (`rotated` holds O·Pᵀ for the current P).
        let signs: Vec<f64> = rotated
            .iter()
            .map(|&y| if y >= 0.0 { 1.0 } else { -1.0 })
            .collect();
        let m = dgemm(padded, n, padded, &signs, (1, padded), &o64, (padded, 1));
        p = polar(padded, &m).into_iter().map(|v| v as f32).collect();
        let q = quality(&p, &mut rotated);
        if it % cfg.val_every.max(1) == 0 || it == cfg.iters {
            let v = validate(&p);
            on_check(it, q, v);
            if v > best.best_val {
                best = LearnedRotation {
                    rotation: p.clone(),
                    best_val: v,
                    best_iter: it,
                    best_quality: q,
                    ..best
                };
            }
        }
    }
    best
}

/// Options of [`distill_rotation`].
#[derive(Clone, Debug)]
pub struct DistillConfig {
    pub epochs: usize,
    /// Rows per batch; each brings its mined float neighbours as candidates.
    pub batch: usize,
    pub lr: f64,
    /// Teacher temperature (float cosines).
    pub tau: f32,
    /// Validate every this many steps (and at epoch ends).
    pub val_every: usize,
    /// Stop after this many validations without a new best.
    pub patience: usize,
    pub seed: u64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            epochs: 8,
            batch: 128,
            lr: 1e-4,
            tau: 0.1,
            val_every: 10,
            patience: 8,
            seed: 0,
        }
    }
}

/// Trains RaBitQ's rotation `P` by distilling the float cosine ranking through RaBitQ's own
/// estimator: for a batch row `q` and each candidate `x` (the batch and every row's mined float
/// neighbours) the student score is `‖o_x‖·⟨b_x, P(q − μ)⟩/⟨b_x, P·o_x/‖o_x‖⟩ + ⟨o_x, μ⟩` with
/// `b_x = sign(P·o_x)` (gradient by the straight-through estimator), exactly the estimate an index
/// ranks by (up to the query's 4-bit rounding and the constant `⟨μ, q⟩`). The loss is the
/// cross-entropy between `softmax(cos/τ)` and `softmax(s·score)`, `s` learned. After every AdamW
/// step one Newton–Schulz iteration `P ← (3P − P·Pᵀ·P)/2` pulls `P` back to orthogonal (the
/// estimator assumes it). Starts from `start` (RaBitQ's rotation or ITQ's); validation as in
/// [`learn_rotation`] keeps the best rotation, the start included.
#[allow(clippy::too_many_arguments)]
pub fn distill_rotation(
    dim: usize,
    rows: &[f32],
    neighbours: &[Vec<u32>],
    start: &[f32],
    val_queries: &[f32],
    val_docs: &[f32],
    cfg: &DistillConfig,
    on_check: &mut dyn FnMut(usize, f64),
) -> candle_core::Result<LearnedRotation> {
    use candle_core::{Device, Tensor, Var};
    use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let fit = FitOptions::default();
    let lattice = Lattice::fit(dim, 1, rows, fit);
    let padded = lattice.padded;
    let validate = validator(dim, val_queries, val_docs, fit);
    let n = rows.len() / dim;
    let dev = Device::Cpu;
    // Centred, padded residuals, their norms and ⟨o, μ⟩.
    let mut centred = vec![0f32; n * padded];
    for (x, o) in rows.chunks_exact(dim).zip(centred.chunks_exact_mut(padded)) {
        for ((o, &x), &m) in o.iter_mut().zip(x).zip(&lattice.mean) {
            *o = x - m;
        }
    }
    let norms: Vec<f32> = centred
        .chunks_exact(padded)
        .map(|o| o.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12))
        .collect();
    let dot_mean: Vec<f32> = centred
        .chunks_exact(padded)
        .map(|o| o.iter().zip(&lattice.mean).map(|(a, b)| a * b).sum())
        .collect();
    let p = Var::from_tensor(&Tensor::from_vec(start.to_vec(), (padded, padded), &dev)?)?;
    let log_scale = Var::new(&[(1.0 / cfg.tau.max(1e-3)).ln()], &dev)?;
    let mut opt = AdamW::new(
        vec![p.clone(), log_scale.clone()],
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let start_val = validate(start);
    on_check(0, start_val);
    let mut best = LearnedRotation {
        rotation: start.to_vec(),
        start_val,
        best_val: start_val,
        best_iter: 0,
        start_quality: f64::NAN,
        best_quality: f64::NAN,
    };
    let gather = |ids: &[usize], src: &[f32], width: usize| -> Vec<f32> {
        ids.iter()
            .flat_map(|&i| src[i * width..(i + 1) * width].iter().copied())
            .collect()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let (mut step, mut stale) = (0usize, 0usize);
    'epochs: for _epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(cfg.batch.max(2)) {
            let mut cands: Vec<usize> = batch.to_vec();
            cands.extend(
                batch
                    .iter()
                    .flat_map(|&i| neighbours[i].iter().map(|&j| j as usize)),
            );
            let (nb, nc) = (batch.len(), cands.len());
            let xq = Tensor::from_vec(gather(batch, rows, dim), (nb, dim), &dev)?;
            let xc = Tensor::from_vec(gather(&cands, rows, dim), (nc, dim), &dev)?;
            let teacher = xq.matmul(&xc.t()?)?;
            let oq = Tensor::from_vec(gather(batch, &centred, padded), (nb, padded), &dev)?;
            let oc = Tensor::from_vec(gather(&cands, &centred, padded), (nc, padded), &dev)?;
            let nc_norm: Vec<f32> = cands.iter().map(|&i| norms[i]).collect();
            let nc_norm = Tensor::from_vec(nc_norm, (nc, 1), &dev)?;
            let dm: Vec<f32> = cands.iter().map(|&i| dot_mean[i]).collect();
            let dm = Tensor::from_vec(dm, (1, nc), &dev)?;
            let pt = p.as_tensor().t()?;
            let v = oq.matmul(&pt)?; // P(q − μ), nb × D'
            let r = oc.broadcast_div(&nc_norm)?.matmul(&pt)?; // P·o/‖o‖, nc × D'
            let b = crate::estimator::sign_code(&r, crate::Estimator::Ste, 0.0)?;
            let quality = (&b * &r)?.sum_keepdim(1)?; // ⟨b, o'⟩ (= ‖o'‖₁), nc × 1
            let factor = nc_norm.broadcast_div(&quality)?.t()?; // 1 × nc
            let score = v
                .matmul(&b.t()?)?
                .broadcast_mul(&factor)?
                .broadcast_add(&dm)?;
            let loss =
                crate::loss::distill(&score, &teacher, &log_scale.as_tensor().exp()?, cfg.tau)?;
            opt.backward_step(&loss)?;
            // One Newton–Schulz step back to the orthogonal group.
            let pm = p.as_tensor();
            let ppt_p = pm.matmul(&pm.t()?)?.matmul(pm)?;
            p.set(&((pm * 1.5)? - (ppt_p * 0.5)?)?)?;
            step += 1;
            if step % cfg.val_every.max(1) == 0 {
                let rot: Vec<f32> = p.as_tensor().flatten_all()?.to_vec1()?;
                let val = validate(&rot);
                on_check(step, val);
                if val > best.best_val {
                    best.rotation = rot;
                    best.best_val = val;
                    best.best_iter = step;
                    stale = 0;
                } else {
                    stale += 1;
                    if stale >= cfg.patience {
                        break 'epochs;
                    }
                }
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitseek_codes::rotation::random_orthogonal;

    #[test]
    fn polar_factor_is_orthogonal_and_recovers_a_rotation() {
        let n = 8;
        let r = random_orthogonal(n, 3);
        // m = R·S with S symmetric positive definite: polar(m) = R.
        let s: Vec<f64> = (0..n * n)
            .map(|i| {
                if i / n == i % n {
                    1.0 + (i / n) as f64
                } else {
                    0.1
                }
            })
            .collect();
        let m: Vec<f64> = (0..n * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..n).map(|k| r[i * n + k] as f64 * s[k * n + j]).sum()
            })
            .collect();
        let p = polar(n, &m);
        for (a, b) in p.iter().zip(&r) {
            assert!((a - *b as f64).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// Anisotropic unit vectors, as embeddings are.
    fn anisotropic(n: usize, dim: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
        use rand::Rng;
        let mut v: Vec<f32> = (0..n * dim)
            .map(|i| 0.2 + rng.gen_range(-1.0f32..1.0) / (1.0 + (i % dim) as f32))
            .collect();
        v.chunks_exact_mut(dim)
            .for_each(bitseek_index::vector::normalize);
        v
    }

    fn assert_orthogonal(p: &[f32], dim: usize) {
        for i in 0..dim {
            for j in 0..dim {
                let d: f32 = (0..dim).map(|k| p[i * dim + k] * p[j * dim + k]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-3, "P·Pᵀ[{i},{j}] = {d}");
            }
        }
    }

    #[test]
    fn distilled_rotation_stays_orthogonal_and_never_validates_below_the_start() {
        use rand::SeedableRng;
        let dim = 64;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let (train, vq, vd) = (
            anisotropic(600, dim, &mut rng),
            anisotropic(50, dim, &mut rng),
            anisotropic(400, dim, &mut rng),
        );
        let nbrs = crate::data::neighbours(&train, dim, 5);
        let start = Lattice::fit(dim, 1, &train, FitOptions::default()).rotation;
        let cfg = DistillConfig {
            epochs: 2,
            batch: 64,
            lr: 1e-3,
            val_every: 2,
            patience: 100,
            ..Default::default()
        };
        let mut checks = Vec::new();
        let r = distill_rotation(dim, &train, &nbrs, &start, &vq, &vd, &cfg, &mut |s, v| {
            checks.push((s, v))
        })
        .expect("trains");
        assert_eq!(
            checks.len(),
            1 + 20 / 2,
            "a check at the start and every 2 of 20 steps"
        );
        let top = checks.iter().map(|c| c.1).fold(f64::MIN, f64::max);
        assert_eq!(r.start_val, checks[0].1);
        assert_eq!(r.best_val, top, "the best check is kept");
        assert!(r.best_val >= r.start_val);
        if r.best_iter == 0 {
            assert_eq!(r.rotation, start);
        }
        // Training moved P (validation changed) and kept it orthogonal.
        assert!(checks.iter().any(|c| c.1 != checks[0].1), "{checks:?}");
        assert_orthogonal(&r.rotation, dim);
    }

    #[test]
    fn itq_raises_the_quality_factor_and_never_validates_below_the_start() {
        use rand::{Rng, SeedableRng};
        let dim = 64;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        // Anisotropic data: a few strong directions, as embeddings have.
        let scales: Vec<f32> = (0..dim).map(|i| 1.0 / (1.0 + i as f32)).collect();
        let mut gen = |n: usize| -> Vec<f32> {
            let mut v: Vec<f32> = (0..n * dim)
                .map(|i| scales[i % dim] * rng.gen_range(-1.0f32..1.0))
                .collect();
            v.chunks_exact_mut(dim)
                .for_each(bitseek_index::vector::normalize);
            v
        };
        let (train, vq, vd) = (gen(2000), gen(100), gen(1000));
        let cfg = RotationConfig {
            iters: 10,
            val_every: 2,
            ..Default::default()
        };
        let mut checks = Vec::new();
        let r = learn_rotation(dim, &train, &vq, &vd, &cfg, &mut |i, q, v| {
            checks.push((i, q, v))
        });
        assert_eq!(checks.first().map(|c| c.0), Some(0));
        assert!(r.best_val >= r.start_val);
        let last = checks.last().expect("checks");
        assert!(
            last.1 > r.start_quality + 0.01,
            "ITQ raises mean ⟨x̄,o⟩: {} → {}",
            r.start_quality,
            last.1
        );
        assert_orthogonal(&r.rotation, dim);
    }
}

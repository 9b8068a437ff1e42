//! The recurrent binarizer as a trainable candle model (BEBR's `RBE_NORM`, methods.md §1.2):
//! `b = sign(W(x))`; for each further plane `k`, `x̂ = normalise(Bₖ(b))`, `b += 2^-k·sign(Rₖ(x − x̂))`.
//! Every MLP is `Linear → BatchNorm → ReLU → Linear` (Xavier-normal weights, zero biases), residual
//! (`x + MLP(x)`) when its input and output widths agree. The batch norm is optional
//! ([`Norm::None`]): on the Python code-search set, trained on some packages and validated on
//! others, it made every epoch worse than the untrained start while the same MLP without it
//! improved (crates/bitseek-learn/README.md).
//! [`Binarizer::export`] folds the batch norm into the first linear layer and hands back the
//! plain-Rust [`Learned`] encoder that searching uses.

use crate::estimator::{periodic_weights, sign_code, Estimator};
use bitseek_codes::quantizer::learned::{Learned, LearnedConfig, Mlp};
use candle_core::{DType, Device, Result, Tensor, Var, D};
use rand::Rng;
use rand_distr::{Distribution, Normal};

const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

/// What sits between an MLP's first linear layer and its ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// BatchNorm (BEBR's block): batch statistics in training, running ones once exported.
    Batch,
    /// Nothing: `Linear → ReLU → Linear`.
    None,
}

impl std::str::FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "batch" => Ok(Norm::Batch),
            "none" => Ok(Norm::None),
            _ => Err(format!("unknown norm {s:?}: expected batch or none")),
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Norm::Batch => "batch",
            Norm::None => "none",
        })
    }
}

/// How a binarizer's weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Xavier-normal MLPs (BEBR), residual blocks close to their skip path.
    Xavier,
    /// The training-free lattice (methods.md §16.1): every MLP starts as an exact linear map
    /// written through its ReLU (`A·x = [A, −A]·relu([I; −I]·x)`, or `[I, −I]·relu([A; −A]·x)`),
    /// so the untrained encoder is RaBitQ's rotation and sign, `s₀ = sign(P·x)` with a seeded
    /// random orthogonal (or orthonormal-column, when `m > dim`) `P`, and each further plane the
    /// sign of the rotated residual `P(x − x̂)`, `x̂ = normalise(α·Pᵀ·acc)`. Training starts from
    /// the lattice's level, and keeping the best validation keeps at least that level. Not
    /// centred: learned codes score by the cosine of codes, which cannot carry RaBitQ's
    /// per-vector correction for `⟨x, μ⟩` and `‖x − μ‖`, so centring on the training mean makes
    /// every score biased per document (and docstring queries do not share the code mean); on
    /// the Rust dev set the uncentred start was the better one (crates/bitseek-learn/README.md).
    /// Needs a hidden width of at least `2·min(dim, m)` and no batch norm.
    Rotation,
    /// [`Init::Rotation`] on `x − μ` (`μ` the mean of the training sample), as RaBitQ centres.
    #[serde(rename = "rotation-centred")]
    RotationCentred,
}

impl std::str::FromStr for Init {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "xavier" => Ok(Init::Xavier),
            "rotation" => Ok(Init::Rotation),
            "rotation-centred" => Ok(Init::RotationCentred),
            _ => Err(format!(
                "unknown init {s:?}: expected xavier, rotation or rotation-centred"
            )),
        }
    }
}

impl std::fmt::Display for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Init::Xavier => "xavier",
            Init::Rotation => "rotation",
            Init::RotationCentred => "rotation-centred",
        })
    }
}

/// One `Linear → BatchNorm → ReLU → Linear` block (or without the batch norm).
pub struct MlpVars {
    pub w1: Var,
    pub b1: Var,
    pub gamma: Var,
    pub beta: Var,
    pub w2: Var,
    pub b2: Var,
    /// Batch-norm running statistics (updated outside the graph).
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    norm: Norm,
    input: usize,
    hidden: usize,
    output: usize,
}

fn xavier<R: Rng>(rows: usize, cols: usize, rng: &mut R) -> Result<Var> {
    let std = (2.0 / (rows + cols) as f32).sqrt();
    let n = Normal::new(0.0f32, std).expect("positive std");
    let data: Vec<f32> = (0..rows * cols).map(|_| n.sample(rng)).collect();
    Var::from_tensor(&Tensor::from_vec(data, (rows, cols), &Device::Cpu)?)
}

fn filled(n: usize, v: f32) -> Result<Var> {
    Var::from_tensor(&Tensor::full(v, n, &Device::Cpu)?)
}

fn to_vec(v: &Var) -> Result<Vec<f32>> {
    v.as_tensor().flatten_all()?.to_vec1::<f32>()
}

impl MlpVars {
    fn new<R: Rng>(
        input: usize,
        hidden: usize,
        output: usize,
        norm: Norm,
        rng: &mut R,
    ) -> Result<MlpVars> {
        Ok(MlpVars {
            w1: xavier(hidden, input, rng)?,
            b1: filled(hidden, 0.0)?,
            gamma: filled(hidden, 1.0)?,
            beta: filled(hidden, 0.0)?,
            // Residual blocks start close to their skip path.
            w2: if input == output {
                Var::from_tensor(&(xavier(output, hidden, rng)?.as_tensor() * 0.1)?)?
            } else {
                xavier(output, hidden, rng)?
            },
            b2: filled(output, 0.0)?,
            mean: vec![0.0; hidden],
            var: vec![1.0; hidden],
            norm,
            input,
            hidden,
            output,
        })
    }

    /// A block that computes exactly `A·x + bias` (`a` row-major `output × input`) through its
    /// ReLU: `r = min(input, output)` mirrored pairs of hidden units carry the linear map
    /// (`relu(v) − relu(−v) = v`); hidden units past `2r` start with small random inputs and
    /// zero outputs, so they change nothing until trained. A residual block (equal widths) gets
    /// `A − I`, as its skip path adds `x`.
    fn linear<R: Rng>(
        input: usize,
        hidden: usize,
        output: usize,
        a: &[f32],
        bias: &[f32],
        rng: &mut R,
    ) -> Result<MlpVars> {
        let r = input.min(output);
        if hidden < 2 * r {
            return Err(candle_core::Error::Msg(format!(
                "the rotation start needs a hidden width of at least {} (2 × min({input}, {output})), got {hidden}; use --hidden {}",
                2 * r,
                2 * r
            )));
        }
        let mut a = a.to_vec();
        if input == output {
            (0..input).for_each(|i| a[i * input + i] -= 1.0);
        }
        let small = xavier(hidden, input, rng)?
            .as_tensor()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut w1: Vec<f32> = small.iter().map(|v| v * 0.1).collect();
        let mut w2 = vec![0f32; output * hidden];
        w1[..2 * r * input].iter_mut().for_each(|v| *v = 0.0);
        if input <= output {
            for j in 0..input {
                w1[j * input + j] = 1.0;
                w1[(input + j) * input + j] = -1.0;
            }
            for o in 0..output {
                for j in 0..input {
                    w2[o * hidden + j] = a[o * input + j];
                    w2[o * hidden + input + j] = -a[o * input + j];
                }
            }
        } else {
            for o in 0..output {
                for j in 0..input {
                    w1[o * input + j] = a[o * input + j];
                    w1[(output + o) * input + j] = -a[o * input + j];
                }
                w2[o * hidden + o] = 1.0;
                w2[o * hidden + output + o] = -1.0;
            }
        }
        let var = |data: Vec<f32>, shape: (usize, usize)| -> Result<Var> {
            Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu)?)
        };
        Ok(MlpVars {
            w1: var(w1, (hidden, input))?,
            b1: filled(hidden, 0.0)?,
            gamma: filled(hidden, 1.0)?,
            beta: filled(hidden, 0.0)?,
            w2: var(w2, (output, hidden))?,
            b2: Var::from_tensor(&Tensor::from_slice(bias, output, &Device::Cpu)?)?,
            mean: vec![0.0; hidden],
            var: vec![1.0; hidden],
            norm: Norm::None,
            input,
            hidden,
            output,
        })
    }

    fn vars(&self) -> Vec<Var> {
        let mut v = vec![self.w1.clone(), self.b1.clone()];
        if self.norm == Norm::Batch {
            v.extend([self.gamma.clone(), self.beta.clone()]);
        }
        v.extend([self.w2.clone(), self.b2.clone()]);
        v
    }

    /// The weights the forward pass uses (BiPer binarizes them).
    fn weights(&self, periodic: bool) -> Result<(Tensor, Tensor)> {
        if periodic {
            Ok((
                periodic_weights(self.w1.as_tensor())?,
                periodic_weights(self.w2.as_tensor())?,
            ))
        } else {
            Ok((self.w1.as_tensor().clone(), self.w2.as_tensor().clone()))
        }
    }

    fn forward(&mut self, x: &Tensor, train: bool, periodic: bool) -> Result<Tensor> {
        let (w1, w2) = self.weights(periodic)?;
        let h = x.matmul(&w1.t()?)?.broadcast_add(self.b1.as_tensor())?;
        if self.norm == Norm::None {
            return self.finish(x, &h.relu()?, &w2);
        }
        let (mean, var) = if train {
            let mean = h.mean_keepdim(0)?;
            let var = h.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
            let (m, v) = (
                mean.flatten_all()?.to_vec1::<f32>()?,
                var.flatten_all()?.to_vec1::<f32>()?,
            );
            for (r, x) in self.mean.iter_mut().zip(m) {
                *r = (1.0 - BN_MOMENTUM) * *r + BN_MOMENTUM * x;
            }
            for (r, x) in self.var.iter_mut().zip(v) {
                *r = (1.0 - BN_MOMENTUM) * *r + BN_MOMENTUM * x;
            }
            (mean, var)
        } else {
            let d = x.device();
            (
                Tensor::from_slice(&self.mean, (1, self.hidden), d)?,
                Tensor::from_slice(&self.var, (1, self.hidden), d)?,
            )
        };
        let h = h
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS as f64)?.sqrt()?)?
            .broadcast_mul(self.gamma.as_tensor())?
            .broadcast_add(self.beta.as_tensor())?
            .relu()?;
        self.finish(x, &h, &w2)
    }

    /// The second layer and the skip path.
    fn finish(&self, x: &Tensor, h: &Tensor, w2: &Tensor) -> Result<Tensor> {
        let out = h.matmul(&w2.t()?)?.broadcast_add(self.b2.as_tensor())?;
        if self.input == self.output {
            out + x
        } else {
            Ok(out)
        }
    }

    /// The block with batch norm folded into the first layer (running statistics).
    fn export(&self, periodic: bool) -> Result<Mlp> {
        let (w1, w2) = self.weights(periodic)?;
        let mut w1 = w1.flatten_all()?.to_vec1::<f32>()?;
        let mut b1 = to_vec(&self.b1)?;
        let gamma = to_vec(&self.gamma)?;
        let beta = to_vec(&self.beta)?;
        for j in (0..self.hidden).filter(|_| self.norm == Norm::Batch) {
            let s = gamma[j] / (self.var[j] + BN_EPS).sqrt();
            w1[j * self.input..(j + 1) * self.input]
                .iter_mut()
                .for_each(|w| *w *= s);
            b1[j] = (b1[j] - self.mean[j]) * s + beta[j];
        }
        Ok(Mlp {
            input: self.input,
            hidden: self.hidden,
            output: self.output,
            w1,
            b1,
            w2: w2.flatten_all()?.to_vec1::<f32>()?,
            b2: to_vec(&self.b2)?,
        })
    }
}

/// The trainable recurrent binarizer.
pub struct Binarizer {
    pub config: LearnedConfig,
    pub estimator: Estimator,
    pub first: MlpVars,
    pub recon: Vec<MlpVars>,
    pub resid: Vec<MlpVars>,
    /// Learned per-dimension code scales (BinaryDM's multi-basis scales; `None`: fixed at 1),
    /// folded into the exported encoder's factors ([`Learned::scales`]).
    pub scales: Option<Var>,
    /// Learned per-plane weights `β_k` (BinaryDM's multi-basis; `None`: fixed `2^-k`), one per
    /// recurrence step, exported as [`Learned::plane_scales`] and scored by the weighted kernel.
    pub plane_scales: Option<Var>,
}

/// Rows scaled to unit length (a zero row stays zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&(n + 1e-12)?)
}

impl Binarizer {
    /// A freshly initialised binarizer.
    pub fn new<R: Rng>(
        config: LearnedConfig,
        estimator: Estimator,
        norm: Norm,
        rng: &mut R,
    ) -> Result<Self> {
        let (d, m, h) = (config.dim, config.m, config.hidden);
        let first = MlpVars::new(d, h, m, norm, rng)?;
        let mut recon = Vec::new();
        let mut resid = Vec::new();
        for _ in 1..config.bits {
            recon.push(MlpVars::new(m, h, d, norm, rng)?);
            resid.push(MlpVars::new(d, h, m, norm, rng)?);
        }
        Ok(Binarizer {
            config,
            estimator,
            first,
            recon,
            resid,
            scales: None,
            plane_scales: None,
        })
    }

    /// A binarizer started as `init` says; `rows` (L2-normalised, row-major) are a sample of
    /// the training vectors, which the rotation start takes its mean `μ` and its reconstruction
    /// scale `α` from (the Xavier start ignores them; the uncentred rotation takes only `α`).
    pub fn with_init<R: Rng>(
        config: LearnedConfig,
        estimator: Estimator,
        norm: Norm,
        init: Init,
        rows: &[f32],
        seed: u64,
        rng: &mut R,
    ) -> Result<Self> {
        if init == Init::Xavier {
            return Binarizer::new(config, estimator, norm, rng);
        }
        if norm != Norm::None {
            return Err(candle_core::Error::Msg(
                "the rotation start is a linear map through each ReLU, which batch norm would rescale; use --norm none".into(),
            ));
        }
        let (d, m, h) = (config.dim, config.m, config.hidden);
        let p = rotation(d, m, seed);
        let n = rows.len() / d;
        let mut mu = vec![0f32; d];
        let centre = init == Init::RotationCentred;
        for r in rows.chunks_exact(d).filter(|_| centre) {
            mu.iter_mut().zip(r).for_each(|(a, &v)| *a += v / n as f32);
        }
        let pmu: Vec<f32> = (0..m).map(|i| -dot(&p[i * d..(i + 1) * d], &mu)).collect();
        // α: the least-squares scale of Pᵀ·sign(P(x − μ)) against x − μ over the sample.
        let (mut num, mut den) = (0f64, 0f64);
        for r in rows.chunks_exact(d).take(2000) {
            let c: Vec<f32> = r.iter().zip(&mu).map(|(x, m)| x - m).collect();
            let mut back = vec![0f32; d];
            for i in 0..m {
                let s = if dot(&p[i * d..(i + 1) * d], &c) >= 0.0 {
                    1.0
                } else {
                    -1.0
                };
                back.iter_mut()
                    .zip(&p[i * d..(i + 1) * d])
                    .for_each(|(b, &w)| *b += s * w);
            }
            num += dot(&back, &c) as f64;
            den += dot(&back, &back) as f64;
        }
        let alpha = if den > 0.0 {
            (num / den) as f32
        } else {
            1.0 / (m as f32).sqrt()
        };
        let pt: Vec<f32> = (0..d * m).map(|k| alpha * p[(k % m) * d + k / m]).collect();
        let first = MlpVars::linear(d, h, m, &p, &pmu, rng)?;
        let mut recon = Vec::new();
        let mut resid = Vec::new();
        for _ in 1..config.bits {
            recon.push(MlpVars::linear(m, h, d, &pt, &mu, rng)?);
            resid.push(MlpVars::linear(d, h, m, &p, &vec![0.0; m], rng)?);
        }
        Ok(Binarizer {
            config,
            estimator,
            first,
            recon,
            resid,
            scales: None,
            plane_scales: None,
        })
    }

    /// Every trainable variable.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = self.first.vars();
        for m in self.recon.iter().chain(&self.resid) {
            v.extend(m.vars());
        }
        v.extend(self.scales.clone());
        v.extend(self.plane_scales.clone());
        v
    }

    /// Learns the weight of every plane from now on (starting at `2^-k`).
    pub fn learn_plane_scales(&mut self) -> Result<()> {
        let start: Vec<f32> = (0..self.config.bits)
            .map(|k| 0.5f32.powi(k as i32))
            .collect();
        self.plane_scales = Some(Var::from_tensor(&Tensor::new(start, &Device::Cpu)?)?);
        Ok(())
    }

    /// `s ⊙ β_k`: step `k`'s signs times its weight, learned or `2^-k`.
    fn step(&self, s: Tensor, k: usize) -> Result<Tensor> {
        match &self.plane_scales {
            Some(b) => s.broadcast_mul(&b.as_tensor().narrow(0, k, 1)?),
            None if k == 0 => Ok(s),
            None => s * 0.5f64.powi(k as i32),
        }
    }

    /// Learns a scale per code dimension from now on (starting at 1).
    pub fn learn_scales(&mut self) -> Result<()> {
        self.scales = Some(filled(self.config.m, 1.0)?);
        Ok(())
    }

    /// `codes ⊙ w` with the learned scales (unchanged without them).
    fn scaled(&self, codes: Tensor) -> Result<Tensor> {
        match &self.scales {
            Some(w) => codes.broadcast_mul(w.as_tensor()),
            None => Ok(codes),
        }
    }

    /// Multi-bit codes `Σ 2^-k sₖ` of L2-normalised inputs `x` (`n × dim`), times the learned
    /// scales when there are some, differentiable through the estimator; `o` is ReSTE's current
    /// power.
    pub fn forward(&mut self, x: &Tensor, train: bool, o: f32) -> Result<Tensor> {
        let periodic = self.estimator == Estimator::Biper;
        let x = l2_normalize(x)?;
        let z = self.first.forward(&x, train, periodic)?;
        let mut acc = self.step(sign_code(&z, self.estimator, o)?, 0)?;
        for k in 0..self.recon.len() {
            let rec = l2_normalize(&self.recon[k].forward(&acc, train, periodic)?)?;
            let z = self.resid[k].forward(&(&x - rec)?, train, periodic)?;
            let s = sign_code(&z, self.estimator, o)?;
            acc = (acc + self.step(s, k + 1)?)?;
        }
        self.scaled(acc)
    }

    /// [`Binarizer::forward`] (scaled codes) and the (unscaled) float relaxation `Σ 2^-k·clamp(zₖ, −1, 1)` that the
    /// asymmetric query of the exported encoder uses (differentiable too).
    pub fn forward_relaxed(&mut self, x: &Tensor, train: bool, o: f32) -> Result<(Tensor, Tensor)> {
        let periodic = self.estimator == Estimator::Biper;
        let x = l2_normalize(x)?;
        let z = self.first.forward(&x, train, periodic)?;
        let mut acc = self.step(sign_code(&z, self.estimator, o)?, 0)?;
        let mut relaxed = self.step(z.clamp(-1f32, 1f32)?, 0)?;
        for k in 0..self.recon.len() {
            let rec = l2_normalize(&self.recon[k].forward(&acc, train, periodic)?)?;
            let z = self.resid[k].forward(&(&x - rec)?, train, periodic)?;
            let s = sign_code(&z, self.estimator, o)?;
            acc = (acc + self.step(s, k + 1)?)?;
            relaxed = (relaxed + self.step(z.clamp(-1f32, 1f32)?, k + 1)?)?;
        }
        Ok((self.scaled(acc)?, relaxed))
    }

    /// The plain-Rust encoder: batch norm folded, BiPer weights binarized.
    pub fn export(&self) -> Result<Learned> {
        let periodic = self.estimator == Estimator::Biper;
        let first = self.first.export(periodic)?;
        let recon = self
            .recon
            .iter()
            .map(|m| m.export(periodic))
            .collect::<Result<_>>()?;
        let resid = self
            .resid
            .iter()
            .map(|m| m.export(periodic))
            .collect::<Result<_>>()?;
        let mut learned =
            Learned::new(self.config, first, recon, resid).map_err(candle_core::Error::Msg)?;
        if let Some(b) = &self.plane_scales {
            // A weight trained to zero or below is floored at a tiny positive one: the kernel's
            // integer weights are unsigned, and such a plane carries almost nothing anyway.
            let b: Vec<f32> = to_vec(b)?.iter().map(|v| v.max(1e-6)).collect();
            learned = learned
                .with_plane_scales(b)
                .map_err(candle_core::Error::Msg)?;
        }
        match &self.scales {
            Some(w) => learned
                .with_scales(to_vec(w)?)
                .map_err(candle_core::Error::Msg),
            None => Ok(learned),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A seeded `m × dim` matrix with orthonormal rows (`m ≤ dim`) or columns (`m > dim`): the first
/// rows or columns of a random orthogonal matrix, row-major.
pub fn rotation(dim: usize, m: usize, seed: u64) -> Vec<f32> {
    let n = dim.max(m);
    let q = bitseek_codes::rotation::random_orthogonal(n, seed ^ 0x0b17_5eed);
    (0..m * dim).map(|k| q[(k / dim) * n + k % dim]).collect()
}

/// A tensor from row-major rows.
pub fn rows_tensor(data: &[f32], dim: usize) -> Result<Tensor> {
    Tensor::from_slice(data, (data.len() / dim, dim), &Device::Cpu)?.to_dtype(DType::F32)
}

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
        })
    }

    /// Every trainable variable.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = self.first.vars();
        for m in self.recon.iter().chain(&self.resid) {
            v.extend(m.vars());
        }
        v
    }

    /// Multi-bit codes `Σ 2^-k sₖ` of L2-normalised inputs `x` (`n × dim`), differentiable through
    /// the estimator; `o` is ReSTE's current power.
    pub fn forward(&mut self, x: &Tensor, train: bool, o: f32) -> Result<Tensor> {
        let periodic = self.estimator == Estimator::Biper;
        let x = l2_normalize(x)?;
        let z = self.first.forward(&x, train, periodic)?;
        let mut acc = sign_code(&z, self.estimator, o)?;
        for k in 0..self.recon.len() {
            let rec = l2_normalize(&self.recon[k].forward(&acc, train, periodic)?)?;
            let z = self.resid[k].forward(&(&x - rec)?, train, periodic)?;
            let s = sign_code(&z, self.estimator, o)?;
            acc = (acc + (s * 0.5f64.powi(k as i32 + 1))?)?;
        }
        Ok(acc)
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
        Learned::new(self.config, first, recon, resid).map_err(candle_core::Error::Msg)
    }
}

/// A tensor from row-major rows.
pub fn rows_tensor(data: &[f32], dim: usize) -> Result<Tensor> {
    Tensor::from_slice(data, (data.len() / dim, dim), &Device::Cpu)?.to_dtype(DType::F32)
}

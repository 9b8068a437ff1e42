//! Gradients through `sign`: the forward pass is always the exact sign (`sign(0) = +1`), the
//! backward pass multiplies the incoming gradient by the derivative of a surrogate.
//!
//! | estimator | surrogate `f(z)` | `f'(z)` |
//! |---|---|---|
//! | `ste` (clipped, BinaryNet/BEBR) | `clamp(z, −1, 1)` | `1` for `|z| ≤ 1`, else `0` |
//! | `reste` (Wu et al., ICCV 2023) | `sign(z)·|z|^(1/o)` | `(1/o)·|z|^((1−o)/o)` for `0.1 < |z| ≤ 1.5`; the secant slope `0.1^(1/o)/0.1` for `|z| ≤ 0.1`; `0` beyond `t = 1.5` |
//! | `biper` weights (CVPR 2024) | `sin(ω₀·w)` (forward `sign(sin(ω₀ w))`) | `ω₀·cos(ω₀·w)` |
//!
//! ReSTE's `o` ramps from 1 to 3 on a cosine schedule over training ([`reste_o`]); at `o = 1` it is
//! the clipped STE up to its threshold. BiPer binarizes the MLP *weights* (periodic, non-monotone:
//! fine for weights, wrong for an output code whose order matters — methods.md §4), while the
//! code's own sign keeps the clipped STE.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// ReSTE's threshold `t`: no gradient beyond it.
pub const RESTE_THRESHOLD: f32 = 1.5;
/// ReSTE's final power `o`.
pub const RESTE_O_END: f32 = 3.0;
/// Below this `|z|` ReSTE uses the secant slope (the power law's derivative diverges at 0).
pub const RESTE_EPS: f32 = 0.1;
/// BiPer's frequency ω₀ (the authors' scripts use 20).
pub const BIPER_OMEGA: f32 = 20.0;

/// How the gradient passes through the sign of the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// Clipped straight-through.
    Ste,
    /// Rectified straight-through (power function, `o` 1 → 3).
    Reste,
    /// Periodic binarization of the MLP weights; the code's sign uses the clipped STE.
    Biper,
}

impl std::str::FromStr for Estimator {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ste" => Ok(Estimator::Ste),
            "reste" => Ok(Estimator::Reste),
            "biper" => Ok(Estimator::Biper),
            _ => Err(format!(
                "unknown estimator {s:?}: expected ste, reste or biper"
            )),
        }
    }
}

impl std::fmt::Display for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Estimator::Ste => "ste",
            Estimator::Reste => "reste",
            Estimator::Biper => "biper",
        })
    }
}

/// ReSTE's `o` after `progress ∈ [0, 1]` of training: `1 + (o_end − 1)(1 − cos(π/2 · progress))`.
pub fn reste_o(progress: f32) -> f32 {
    let p = progress.clamp(0.0, 1.0);
    1.0 + (RESTE_O_END - 1.0) * (1.0 - (std::f32::consts::FRAC_PI_2 * p).cos())
}

/// `sign` with `sign(0) = +1`.
pub fn sign(z: f32) -> f32 {
    if z >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// Clipped STE's surrogate derivative.
pub fn ste_grad(z: f32) -> f32 {
    if z.abs() <= 1.0 {
        1.0
    } else {
        0.0
    }
}

/// ReSTE's surrogate `sign(z)·|z|^(1/o)` (linear below [`RESTE_EPS`], flat beyond the threshold),
/// whose derivative is [`reste_grad`].
pub fn reste_surrogate(z: f32, o: f32) -> f32 {
    let a = z.abs();
    let knee = RESTE_EPS.powf(1.0 / o);
    let v = if a <= RESTE_EPS {
        a * knee / RESTE_EPS
    } else {
        a.min(RESTE_THRESHOLD).powf(1.0 / o)
    };
    v * sign(z)
}

/// ReSTE's backward multiplier.
pub fn reste_grad(z: f32, o: f32) -> f32 {
    let a = z.abs();
    if a > RESTE_THRESHOLD {
        0.0
    } else if a <= RESTE_EPS {
        RESTE_EPS.powf(1.0 / o) / RESTE_EPS
    } else {
        a.powf((1.0 - o) / o) / o
    }
}

/// BiPer's surrogate derivative for a weight.
pub fn biper_grad(w: f32) -> f32 {
    BIPER_OMEGA * (BIPER_OMEGA * w).cos()
}

/// Which elementwise map a [`Binarize`] op applies.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Code sign with the clipped STE.
    Ste,
    /// Code sign with ReSTE at power `o`.
    Reste(f32),
    /// `sign(sin(ω₀ w))` with BiPer's gradient.
    Periodic,
}

/// The custom op: exact forward, surrogate backward.
struct Binarize(Kind);

/// Its backward multiplier as an op of its own (no gradient of the gradient is needed).
struct Grad(Kind);

fn map(
    storage: &CpuStorage,
    layout: &Layout,
    f: impl Fn(f32) -> f32,
) -> Result<(CpuStorage, Shape)> {
    let data = storage.as_slice::<f32>()?;
    let out: Vec<f32> = match layout.contiguous_offsets() {
        Some((a, b)) => data[a..b].iter().map(|&v| f(v)).collect(),
        None => {
            return Err(candle_core::Error::Msg(
                "binarize expects a contiguous tensor".into(),
            ))
        }
    };
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

impl CustomOp1 for Binarize {
    fn name(&self) -> &'static str {
        "binarize"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        match self.0 {
            Kind::Periodic => map(s, l, |w| sign((BIPER_OMEGA * w).sin())),
            _ => map(s, l, sign),
        }
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = arg.contiguous()?.apply_op1_no_bwd(&Grad(self.0))?;
        Ok(Some(grad.mul(&g)?))
    }
}

impl CustomOp1 for Grad {
    fn name(&self) -> &'static str {
        "binarize-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        match self.0 {
            Kind::Ste => map(s, l, ste_grad),
            Kind::Reste(o) => map(s, l, move |z| reste_grad(z, o)),
            Kind::Periodic => map(s, l, biper_grad),
        }
    }
}

/// `sign(z)` with the estimator's gradient; `o` is ReSTE's current power (ignored otherwise).
pub fn sign_code(z: &Tensor, estimator: Estimator, o: f32) -> Result<Tensor> {
    let kind = match estimator {
        Estimator::Reste => Kind::Reste(o),
        Estimator::Ste | Estimator::Biper => Kind::Ste,
    };
    z.contiguous()?.apply_op1(Binarize(kind))
}

/// `sign(sin(ω₀ w))` with BiPer's gradient `ω₀ cos(ω₀ w)`.
pub fn sign_periodic(w: &Tensor) -> Result<Tensor> {
    w.contiguous()?.apply_op1(Binarize(Kind::Periodic))
}

/// BiPer's binary weights `α·sign(sin(ω₀ w))`, `α` = mean `|w|` of each output row.
pub fn periodic_weights(w: &Tensor) -> Result<Tensor> {
    let b = sign_periodic(w)?;
    let alpha = w.abs()?.mean_keepdim(1)?;
    b.broadcast_mul(&alpha)
}

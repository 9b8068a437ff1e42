//! Learned codes: the query-time half of a recurrent binarizer (BEBR, Gan et al., KDD 2023;
//! methods.md §1.2, §16.4), in plain Rust so searching needs no training framework.
//!
//! The model is trained elsewhere (`bitseek-learn`); here it is a handful of `f32` matrices with
//! batch normalisation already folded into the first linear layer of each MLP:
//!
//! ```text
//! x  = input / ‖input‖
//! s₀ = sign(W(x))                                      plane 0 (most significant)
//! for k in 1..B:  x̂ = normalise(Bₖ(acc));  sₖ = sign(Rₖ(x − x̂));  acc += 2^-k·sₖ
//! ```
//!
//! where every MLP is `Linear → ReLU → Linear` (plus its input when widths agree) and `acc = Σ 2^-k sₖ`. The code value of dimension
//! `i` is `acc_i = 2^(2−B)·(U_i − (2^B − 1)/2)` with `U_i = Σ_k 2^(B−1−k)·[sₖ,ᵢ > 0]`, i.e. exactly
//! the lattice of [`super::Lattice`] stored as `B` unsigned bit-planes (plane 0 least significant),
//! so the same `ip_planes_blocks` kernel and flat scan serve learned codes.
//!
//! Scores are cosines of codes: the per-vector factors are `1/‖U − c‖` and `ΣU`. A query is either
//! encoded by the same model (symmetric, code vs code) or kept as the model's float relaxation
//! `Σ 2^-k·clamp(zₖ, −1, 1)` — the function whose gradient the clipped straight-through estimator
//! trains — quantized to 4–8 bits (asymmetric).

use super::{Codes, QueryCode, QueryMode};
use crate::layout::{words_for, BitPlanes};
use serde::{Deserialize, Serialize};

/// Most planes (bits per dimension) a learned code may have.
pub const MAX_BITS: usize = 4;

/// Integer weight of the heaviest plane when planes carry learned weights: the others are
/// rounded to multiples of `1/PLANE_WEIGHT_UNIT` of it (a relative error of at most 1/2048).
pub const PLANE_WEIGHT_UNIT: u32 = 1024;

/// Most query bits against codes with learned plane weights: the kernel's `u32` product
/// `Σ_i V_i·Q_i` stays below `2^32` for `m · ΣW · (2^8 − 1) < 2^32`, checked at construction.
pub const PLANE_WEIGHTED_QUERY_BITS: usize = 8;

/// Shape of a learned encoder, stored next to its weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedConfig {
    /// Input (embedding) dimension.
    pub dim: usize,
    /// Code dimensions `m`.
    pub m: usize,
    /// Bit-planes per code dimension (1..=[`MAX_BITS`]).
    pub bits: usize,
    /// Hidden width of every MLP.
    pub hidden: usize,
}

/// `Linear → ReLU → Linear` with row-major weights (`out × in`); when the input and output widths
/// are equal the block is residual, `x + MLP(x)` (BEBR's "residual MLP blocks"), so an untrained
/// encoder already starts from greedy residual sign codes of the input.
#[derive(Clone, Debug, PartialEq)]
///
/// The fields are public so trainers can export into it; [`Learned::new`] checks their shapes, and
/// the forward pass checks them again before its raw-pointer matrix product.
pub struct Mlp {
    /// Input width.
    pub input: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Output width.
    pub output: usize,
    /// First layer's weights, `hidden × input`.
    pub w1: Vec<f32>,
    /// First layer's bias, `hidden`.
    pub b1: Vec<f32>,
    /// Second layer's weights, `output × hidden`.
    pub w2: Vec<f32>,
    /// Second layer's bias, `output`.
    pub b2: Vec<f32>,
}

impl Mlp {
    /// Checks that the weights have the lengths the shape promises.
    fn check(&self, name: &str) -> Result<(), String> {
        let want = [
            ("w1", self.w1.len(), self.hidden * self.input),
            ("b1", self.b1.len(), self.hidden),
            ("w2", self.w2.len(), self.output * self.hidden),
            ("b2", self.b2.len(), self.output),
        ];
        for (part, found, expected) in want {
            if found != expected {
                return Err(format!(
                    "{name}.{part} holds {found} values, expected {expected}"
                ));
            }
        }
        if self.iter_weights().any(|v| !v.is_finite()) {
            return Err(format!("{name} has a non-finite weight"));
        }
        Ok(())
    }

    fn iter_weights(&self) -> impl Iterator<Item = &f32> {
        self.w1
            .iter()
            .chain(&self.b1)
            .chain(&self.w2)
            .chain(&self.b2)
    }

    /// `out = W2·relu(W1·x + b1) + b2 (+ x when residual)` for `n` row-major rows; `hid` is scratch.
    pub fn forward(&self, x: &[f32], n: usize, hid: &mut Vec<f32>, out: &mut Vec<f32>) {
        hid.resize(n * self.hidden, 0.0);
        out.resize(n * self.output, 0.0);
        linear(x, n, self.input, &self.w1, &self.b1, self.hidden, hid);
        hid.iter_mut().for_each(|v| *v = v.max(0.0));
        linear(hid, n, self.hidden, &self.w2, &self.b2, self.output, out);
        if self.input == self.output {
            out.iter_mut()
                .zip(&x[..n * self.input])
                .for_each(|(o, v)| *o += v);
        }
    }

    /// [`Mlp::forward`] over any number of rows (4,096 at a time, so the scratch stays small),
    /// each output row L2-normalised (a zero row stays zero): how a code head's towers are
    /// applied, when training and when searching.
    pub fn forward_normalized(&self, rows: &[f32]) -> Vec<f32> {
        let (mut hid, mut out) = (Vec::new(), Vec::new());
        let mut res = Vec::with_capacity(rows.len() / self.input * self.output);
        for chunk in rows.chunks(4096 * self.input) {
            let n = chunk.len() / self.input;
            self.forward(chunk, n, &mut hid, &mut out);
            res.extend_from_slice(&out[..n * self.output]);
        }
        for r in res.chunks_mut(self.output) {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|v| *v /= norm);
            }
        }
        res
    }
}

/// `out[r] = W·x[r] + b` for row-major `W` (`outs × ins`): dot products for one row (the query
/// path, which reads each weight once), a blocked SGEMM for many.
///
/// # Panics
/// When a slice is shorter than the shape says. [`Mlp`]'s fields are public and [`Learned::check`]
/// is only run by its constructors, so the shapes are checked here, where the raw-pointer product
/// needs them, whatever built the MLP.
fn linear(x: &[f32], n: usize, ins: usize, w: &[f32], b: &[f32], outs: usize, out: &mut [f32]) {
    assert!(
        x.len() >= n * ins && w.len() == outs * ins && b.len() == outs && out.len() >= n * outs,
        "linear layer shapes disagree: {n} rows of {ins} in ({} values), weights {outs}×{ins} \
         ({} values), bias {} values, output room {} values",
        x.len(),
        w.len(),
        b.len(),
        out.len()
    );
    if n == 1 {
        let dot = crate::kernels::kernels().dot_f32;
        for ((o, row), &bias) in out.iter_mut().zip(w.chunks_exact(ins)).zip(b) {
            *o = dot(row, x) + bias;
        }
        return;
    }
    for row in out.chunks_exact_mut(outs) {
        row.copy_from_slice(b);
    }
    // SAFETY: the assertion above: x holds at least n×ins values, w exactly outs×ins (read
    // transposed through its strides) and out at least n×outs; out is borrowed mutably, so it
    // aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            n,
            ins,
            outs,
            1.0,
            x.as_ptr(),
            ins as isize,
            1,
            w.as_ptr(),
            1,
            ins as isize,
            1.0,
            out.as_mut_ptr(),
            outs as isize,
            1,
        );
    }
}

/// A trained recurrent binarizer, ready to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct Learned {
    /// The shape every MLP below must have ([`Learned::check`]).
    pub config: LearnedConfig,
    /// `W`: input → code dims.
    pub first: Mlp,
    /// `Bₖ`: accumulated code → input space, one per extra plane.
    pub recon: Vec<Mlp>,
    /// `Rₖ`: residual → code dims, one per extra plane.
    pub resid: Vec<Mlp>,
    /// Learned per-dimension scales `w` of the code (BinaryDM's learnable basis scales, one per
    /// code dimension shared by its planes; empty = all 1): the code value of dimension `i` is
    /// `wᵢ·2^(2−B)(Uᵢ − c)`. Folded so the kernels do not change: into the per-vector factor
    /// `1/‖w ⊙ (U − c)‖` of stored codes, and into the query (`w ⊙ v` is what gets quantized).
    /// Encoder files without a `scales` section load with none.
    pub scales: Vec<f32>,
    /// Learned per-plane weights `β_k` (BinaryDM's multi-basis: the code is `Σ_k β_k sₖ` instead
    /// of `Σ_k 2^-k sₖ`), `k = 0` the first (most significant) plane; empty = `2^-k`. They feed the
    /// recurrence as trained, and the stored code weighs plane `k` by the integer
    /// `W = round(PLANE_WEIGHT_UNIT·β_k / max β)`, so a code value is `2·(V_i − C)` with
    /// `V_i = Σ W·bit` and `C = ΣW/2` ([`Learned::level`], [`Learned::offset`]): without plane weights
    /// `V = U` and `C = (2^B − 1)/2`. The kernel then weighs each plane's popcount apart
    /// ([`Kernels::ip_planes_weighted_blocks`](crate::kernels::Kernels::ip_planes_weighted_blocks));
    /// the factors (`1/‖w ⊙ (V − C)‖`, `ΣV`) fold the rest. Encoder files without a
    /// `plane_scales` section load with none.
    pub plane_scales: Vec<f32>,
}

/// What one pass of the model yields for `n` rows.
pub struct Forward {
    /// Unsigned lattice values `U` (row-major `n × m`).
    pub u: Vec<u8>,
    /// The float relaxation `Σ 2^-k clamp(zₖ, −1, 1)` (row-major `n × m`).
    pub relaxed: Vec<f32>,
}

impl Learned {
    /// Assembles an encoder from its parts, checking every shape and value.
    pub fn new(
        config: LearnedConfig,
        first: Mlp,
        recon: Vec<Mlp>,
        resid: Vec<Mlp>,
    ) -> Result<Learned, String> {
        let l = Learned {
            config,
            first,
            recon,
            resid,
            scales: Vec::new(),
            plane_scales: Vec::new(),
        };
        l.check()?;
        Ok(l)
    }

    /// The encoder with per-plane weights `β_k` (`bits` finite positive values, the first plane's
    /// first; empty = `2^-k`).
    pub fn with_plane_scales(mut self, plane_scales: Vec<f32>) -> Result<Learned, String> {
        self.plane_scales = plane_scales;
        self.check()?;
        Ok(self)
    }

    /// The weight of recurrence step `k` (`2^-k` without plane weights).
    fn step_weight(&self, k: usize) -> f32 {
        self.plane_scales
            .get(k)
            .copied()
            .unwrap_or(0.5f32.powi(k as i32))
    }

    /// Integer weights of the stored planes, plane 0 (least significant, the last recurrence
    /// step) first: `2^p` without plane weights, else `round(PLANE_WEIGHT_UNIT·β/max β)` (at least 1).
    pub fn plane_weights(&self) -> [u32; MAX_BITS] {
        let bits = self.config.bits;
        let mut w = [0u32; MAX_BITS];
        let max = self.plane_scales.iter().copied().fold(0f32, f32::max);
        for (p, wp) in w.iter_mut().enumerate().take(bits) {
            *wp = if self.plane_scales.is_empty() {
                1 << p
            } else {
                let beta = self.plane_scales[bits - 1 - p];
                ((PLANE_WEIGHT_UNIT as f32 * beta / max).round() as u32).max(1)
            };
        }
        w
    }

    /// The lattice value `V = Σ_p W_p·bit_p` of stored bits `u` (`= u` without plane weights).
    pub fn level(&self, u: u8) -> f32 {
        if self.plane_scales.is_empty() {
            return u as f32;
        }
        let w = self.plane_weights();
        (0..self.config.bits)
            .map(|p| ((u >> p) & 1) as u32 * w[p])
            .sum::<u32>() as f32
    }

    /// The encoder with per-dimension code scales (`m` finite non-zero values; empty = none).
    pub fn with_scales(mut self, scales: Vec<f32>) -> Result<Learned, String> {
        self.scales = scales;
        self.check()?;
        Ok(self)
    }

    /// The scale of code dimension `i` (1 without scales).
    fn scale(&self, i: usize) -> f32 {
        self.scales.get(i).copied().unwrap_or(1.0)
    }

    /// Checks shapes: every MLP matches the config and all weights are finite.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.config;
        if c.dim == 0 || c.m == 0 || c.hidden == 0 {
            return Err(format!(
                "encoder shape dim {} → m {} (hidden {}) has a zero",
                c.dim, c.m, c.hidden
            ));
        }
        if !(1..=MAX_BITS).contains(&c.bits) {
            return Err(format!(
                "encoder has {} bits per dimension; 1..={MAX_BITS} are supported",
                c.bits
            ));
        }
        let extra = c.bits - 1;
        if self.recon.len() != extra || self.resid.len() != extra {
            return Err(format!(
                "encoder with {} bits needs {extra} reconstruction and residual MLPs, has {} and {}",
                c.bits,
                self.recon.len(),
                self.resid.len()
            ));
        }
        let shape = |mlp: &Mlp, name: &str, i: usize, o: usize| -> Result<(), String> {
            if (mlp.input, mlp.hidden, mlp.output) != (i, c.hidden, o) {
                return Err(format!(
                    "{name} is {}→{}→{}, expected {i}→{}→{o}",
                    mlp.input, mlp.hidden, mlp.output, c.hidden
                ));
            }
            mlp.check(name)
        };
        if !self.scales.is_empty()
            && (self.scales.len() != c.m || self.scales.iter().any(|w| !w.is_finite() || *w == 0.0))
        {
            return Err(format!(
                "scales hold {} values, expected {} finite non-zero ones",
                self.scales.len(),
                c.m
            ));
        }
        if !self.plane_scales.is_empty() {
            if self.plane_scales.len() != c.bits
                || self
                    .plane_scales
                    .iter()
                    .any(|b| !b.is_finite() || *b <= 0.0)
            {
                return Err(format!(
                    "plane_scales hold {} values, expected {} finite positive ones",
                    self.plane_scales.len(),
                    c.bits
                ));
            }
            let per_dim = self.plane_weights().iter().map(|&w| w as u64).sum::<u64>()
                * ((1u64 << PLANE_WEIGHTED_QUERY_BITS) - 1);
            if c.m as u64 * per_dim > u32::MAX as u64 {
                return Err(format!(
                    "{} code dimensions with these plane weights overflow the 32-bit product; \
                     use at most {} code dimensions",
                    c.m,
                    u32::MAX as u64 / per_dim
                ));
            }
        }
        shape(&self.first, "first", c.dim, c.m)?;
        for (k, (b, r)) in self.recon.iter().zip(&self.resid).enumerate() {
            shape(b, &format!("recon{k}"), c.m, c.dim)?;
            shape(r, &format!("resid{k}"), c.dim, c.m)?;
        }
        Ok(())
    }

    /// Named weight arrays, in a fixed order (for files).
    pub fn tensors(&self) -> Vec<(String, &[f32])> {
        let mut out = Vec::new();
        let mlps = std::iter::once(("first".to_string(), &self.first))
            .chain(
                self.recon
                    .iter()
                    .enumerate()
                    .map(|(k, m)| (format!("recon{k}"), m)),
            )
            .chain(
                self.resid
                    .iter()
                    .enumerate()
                    .map(|(k, m)| (format!("resid{k}"), m)),
            );
        for (name, m) in mlps {
            out.push((format!("{name}.w1"), m.w1.as_slice()));
            out.push((format!("{name}.b1"), m.b1.as_slice()));
            out.push((format!("{name}.w2"), m.w2.as_slice()));
            out.push((format!("{name}.b2"), m.b2.as_slice()));
        }
        if !self.scales.is_empty() {
            out.push(("scales".to_string(), self.scales.as_slice()));
        }
        if !self.plane_scales.is_empty() {
            out.push(("plane_scales".to_string(), self.plane_scales.as_slice()));
        }
        out
    }

    /// Rebuilds an encoder from its config and the arrays named by [`Learned::tensors`].
    pub fn from_tensors(
        config: LearnedConfig,
        mut get: impl FnMut(&str) -> Result<Vec<f32>, String>,
    ) -> Result<Learned, String> {
        let mut mlp = |name: &str, input: usize, output: usize| -> Result<Mlp, String> {
            Ok(Mlp {
                input,
                hidden: config.hidden,
                output,
                w1: get(&format!("{name}.w1"))?,
                b1: get(&format!("{name}.b1"))?,
                w2: get(&format!("{name}.w2"))?,
                b2: get(&format!("{name}.b2"))?,
            })
        };
        let extra = config.bits.saturating_sub(1).min(MAX_BITS);
        let first = mlp("first", config.dim, config.m)?;
        let recon = (0..extra)
            .map(|k| mlp(&format!("recon{k}"), config.m, config.dim))
            .collect::<Result<_, _>>()?;
        let resid = (0..extra)
            .map(|k| mlp(&format!("resid{k}"), config.dim, config.m))
            .collect::<Result<_, _>>()?;
        Learned::new(config, first, recon, resid)
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.config.dim
    }

    /// Bit-planes per code.
    pub fn bits(&self) -> usize {
        self.config.bits
    }

    /// 64-bit words per plane.
    pub fn words(&self) -> usize {
        words_for(self.config.m)
    }

    /// `C = ΣW/2`, the centre of the (weighted) unsigned lattice: `(2^B − 1)/2` without plane
    /// weights.
    pub fn offset(&self) -> f32 {
        self.plane_weights().iter().sum::<u32>() as f32 / 2.0
    }

    /// Runs the model on `n = rows.len() / dim` rows (each L2-normalised first).
    pub fn forward(&self, rows: &[f32]) -> Forward {
        let (d, m, bits) = (self.config.dim, self.config.m, self.config.bits);
        let n = rows.len() / d;
        let mut x = rows[..n * d].to_vec();
        for r in x.chunks_exact_mut(d) {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|v| *v /= norm);
            }
        }
        let (mut hid, mut z, mut rec) = (Vec::new(), Vec::new(), Vec::new());
        self.first.forward(&x, n, &mut hid, &mut z);
        let w0 = self.step_weight(0);
        let mut acc: Vec<f32> = z.iter().map(|&v| w0 * sign(v)).collect();
        let mut relaxed: Vec<f32> = z.iter().map(|&v| w0 * v.clamp(-1.0, 1.0)).collect();
        let mut u: Vec<u8> = z
            .iter()
            .map(|&v| ((v >= 0.0) as u8) << (bits - 1))
            .collect();
        let mut residual = vec![0f32; n * d];
        for k in 1..bits {
            self.recon[k - 1].forward(&acc, n, &mut hid, &mut rec);
            for ((res, xr), rr) in residual
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(rec.chunks_exact(d))
            {
                let norm = rr.iter().map(|v| v * v).sum::<f32>().sqrt();
                let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                for ((o, &xv), &rv) in res.iter_mut().zip(xr).zip(rr) {
                    *o = xv - rv * inv;
                }
            }
            self.resid[k - 1].forward(&residual, n, &mut hid, &mut z);
            let w = self.step_weight(k);
            for i in 0..n * m {
                acc[i] += w * sign(z[i]);
                relaxed[i] += w * z[i].clamp(-1.0, 1.0);
                u[i] |= ((z[i] >= 0.0) as u8) << (bits - 1 - k);
            }
        }
        Forward { u, relaxed }
    }

    /// Encodes stored vectors: `B` bit-planes plus the factors `1/‖U − c‖` and `ΣU`.
    pub fn encode(&self, rows: &[f32]) -> Codes {
        let m = self.config.m;
        let f = self.forward(rows);
        let n = f.u.len() / m;
        let words = self.words();
        let bits = self.config.bits;
        let mut planes = BitPlanes::zeros(n, bits, words);
        let mut scale = vec![0f32; n];
        let mut sum_u = vec![0f32; n];
        let mut code = vec![0u64; bits * words];
        let c = self.offset();
        let levels = self.levels();
        for (r, u) in f.u.chunks_exact(m).enumerate() {
            let (s, y2) = pack(u, bits, words, c, &levels, &mut code);
            planes.set(r, &code);
            sum_u[r] = s;
            scale[r] = 1.0 / self.scaled_norm(u, y2);
        }
        Codes {
            len: n,
            planes: bits,
            words,
            bits: planes.data,
            bytes: Vec::new(),
            factors: vec![scale, sum_u],
        }
    }

    /// [`Learned::level`] of every stored value `0..2^B`.
    fn levels(&self) -> [f32; 1 << MAX_BITS] {
        let mut out = [0f32; 1 << MAX_BITS];
        for (u, l) in out.iter_mut().enumerate().take(1 << self.config.bits) {
            *l = self.level(u as u8);
        }
        out
    }

    /// `‖w ⊙ (V − C)‖` of one code (`y2 = ‖V − C‖²`, the answer without scales).
    fn scaled_norm(&self, u: &[u8], y2: f32) -> f32 {
        if self.scales.is_empty() {
            return y2.sqrt();
        }
        let (c, levels) = (self.offset(), self.levels());
        u.iter()
            .zip(&self.scales)
            .map(|(&ui, &w)| (w * (levels[ui as usize] - c)).powi(2))
            .sum::<f32>()
            .sqrt()
    }

    /// Prepares a query: symmetric (the model's own code) or asymmetric (its float relaxation,
    /// rounded to `query_bits` bits, 1..=16). Scores are then cosines with the stored codes.
    pub fn encode_query_bits(&self, q: &[f32], mode: QueryMode, query_bits: usize) -> QueryCode {
        let (m, bits) = (self.config.m, self.config.bits);
        let f = self.forward(q);
        let words = self.words();
        let c = self.offset();
        let weighted = !self.plane_scales.is_empty();
        // Against weighted planes the query is at most 8 bits (see PLANE_WEIGHTED_QUERY_BITS).
        let max_bits = if weighted {
            PLANE_WEIGHTED_QUERY_BITS
        } else {
            16
        };
        let levels = self.levels();
        match mode {
            QueryMode::Symmetric if !self.scales.is_empty() || weighted => {
                // ⟨w⊙y_q, w⊙y_d⟩ = ⟨w²⊙y_q, y_d⟩: the query becomes a float vector, rounded
                // to 8 bits like an asymmetric one, normalised by ‖w⊙y_q‖ (weighted planes take
                // this path too: their products are not one plane-by-plane kernel call).
                let u = &f.u[..m];
                let y = |ui: u8| levels[ui as usize] - c;
                let v: Vec<f32> = u
                    .iter()
                    .enumerate()
                    .map(|(i, &ui)| self.scale(i).powi(2) * y(ui))
                    .collect();
                let y2 = u.iter().map(|&ui| y(ui).powi(2)).sum();
                let norm = self.scaled_norm(u, y2);
                float_query(&v, norm, query_bits.clamp(8, max_bits), words, c)
            }
            QueryMode::Symmetric => {
                let mut planes = vec![0u64; bits * words];
                let (sum_v, y2) = pack(&f.u[..m], bits, words, c, &levels, &mut planes);
                let inv = 1.0 / y2.sqrt();
                QueryCode {
                    planes,
                    qplanes: bits,
                    a: inv,
                    b: -c * inv,
                    c: inv * (c * c * m as f32 - c * sum_v),
                    centred_norm: 0.0,
                    offset: 0.0,
                    ..Default::default()
                }
            }
            QueryMode::Asymmetric => {
                let v = &f.relaxed[..m];
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let scaled: Vec<f32>;
                let v = if self.scales.is_empty() {
                    v
                } else {
                    scaled = v.iter().zip(&self.scales).map(|(x, w)| x * w).collect();
                    &scaled
                };
                float_query(v, norm, query_bits.clamp(1, max_bits), words, c)
            }
        }
    }

    /// Cosine estimates for the rows of `blocks` (rows past the end score `-inf`); `ip` is scratch
    /// for the kernel's integer products.
    pub fn score(
        &self,
        codes: &super::CodesRef<'_>,
        query: &QueryCode,
        blocks: std::ops::Range<usize>,
        ip: &mut [u32],
        est: &mut [f32],
    ) {
        let bits = self.config.bits;
        let bw = bits * codes.words * crate::BLOCK;
        let data = &codes.bits[blocks.start * bw..blocks.end * bw];
        let rows = (blocks.end - blocks.start) * crate::BLOCK;
        let (ip, est) = (&mut ip[..rows], &mut est[..rows]);
        let k = crate::kernels::kernels();
        if self.plane_scales.is_empty() {
            (k.ip_planes_blocks)(&query.planes, query.qplanes, data, bits, codes.words, ip);
        } else {
            let w = self.plane_weights();
            (k.ip_planes_weighted_blocks)(
                &query.planes,
                query.qplanes,
                data,
                bits,
                &w[..bits],
                codes.words,
                ip,
            );
        }
        let first = blocks.start * crate::BLOCK;
        let valid = codes.len.saturating_sub(first).min(rows);
        let scale = &codes.factors[0][first..first + valid];
        let sum_u = &codes.factors[1][first..first + valid];
        for i in 0..valid {
            est[i] = scale[i] * (query.a * ip[i] as f32 + query.b * sum_u[i] + query.c);
        }
        est[valid..].iter_mut().for_each(|e| *e = f32::NEG_INFINITY);
    }
}

/// A query code for the float vector `v` (divided by `norm` in the cosine), rounded to `qb` bits.
fn float_query(v: &[f32], norm: f32, qb: usize, words: usize, c: f32) -> QueryCode {
    let m = v.len();
    let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let levels = ((1u32 << qb) - 1) as f32;
    let delta = if hi > lo { (hi - lo) / levels } else { 1.0 };
    let mut planes = vec![0u64; qb * words];
    let mut sum_q = 0f32;
    for (i, &vi) in v.iter().enumerate() {
        let qi = ((vi - lo) / delta).round().clamp(0.0, levels) as u32;
        sum_q += qi as f32;
        for j in 0..qb {
            planes[j * words + i / 64] |= (((qi >> j) & 1) as u64) << (i % 64);
        }
    }
    // ⟨U − c, lo + Δ·Q⟩ = Δ⟨U,Q⟩ + lo·ΣU − cΔ·ΣQ − c·lo·m, divided by ‖v‖.
    QueryCode {
        planes,
        qplanes: qb,
        a: delta * inv,
        b: lo * inv,
        c: -c * (delta * sum_q + lo * m as f32) * inv,
        centred_norm: 0.0,
        offset: 0.0,
        ..Default::default()
    }
}

/// `sign` with `sign(0) = +1`, as the kernels and the bits assume.
fn sign(v: f32) -> f32 {
    if v >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// Writes the bit-planes of lattice values `u` into `code` (plane-major, plane 0 least
/// significant); returns `ΣV` and `‖V − c‖²` for the values `V = levels[u]`.
fn pack(
    u: &[u8],
    bits: usize,
    words: usize,
    c: f32,
    levels: &[f32],
    code: &mut [u64],
) -> (f32, f32) {
    code.iter_mut().for_each(|w| *w = 0);
    let (mut sum, mut y2) = (0f32, 0f32);
    for (i, &ui) in u.iter().enumerate() {
        let v = levels[ui as usize];
        sum += v;
        let y = v - c;
        y2 += y * y;
        for p in 0..bits {
            code[p * words + i / 64] |= (((ui >> p) & 1) as u64) << (i % 64);
        }
    }
    (sum, y2)
}

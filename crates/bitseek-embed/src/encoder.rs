//! The BERT encoder forward pass on the CPU, written for sentence embedding.
//!
//! candle-transformers' `BertModel` pads every batch to a rectangle and runs each step as a
//! separate tensor operation with its own allocation; profiling all-MiniLM-L6-v2 on code showed
//! two thirds of the time outside matrix products (element-wise passes, page faults of fresh
//! buffers, the attention mask). This pass computes the same function the way inference engines
//! do for variable-length text:
//!
//! * tokens of all texts in a batch are packed into one `[tokens, hidden]` matrix (no padding, no
//!   attention mask), so every dense layer is one large matrix product;
//! * attention runs per text and head on that text's rows only;
//! * bias, residual, GELU, softmax scaling and layer norm are fused into the passes around each
//!   product, in buffers reused across layers;
//! * matrix products use the `gemm` crate (candle's own CPU kernel) single-threaded, and batches
//!   run in parallel on rayon's pool.
//!
//! `tests/tiny_model.rs` checks it against candle-transformers' `BertModel` on a random model, and
//! `tests/parity.rs` against sentence-transformers on the real one.

use crate::adapter::{merge, Adapter};
use crate::int8::{QuantDense, Scratch};
use crate::prepared::{self, PreparedCopy};
use crate::weights::{Floats, MappedTensors};
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::path::Path;

/// How a BERT config names its activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Activation {
    /// GELU with the exact erf (what BERT checkpoints call "gelu").
    Gelu,
    /// GELU's tanh approximation.
    #[serde(alias = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluApproximate,
    Relu,
}

/// The fields of a BERT `config.json` this encoder uses.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn two() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Why the config cannot be run, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return Err("hidden_size and num_attention_heads must be positive".into());
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.max_position_embeddings < 2 || self.vocab_size == 0 || self.type_vocab_size == 0 {
            return Err(
                "vocab_size, type_vocab_size and max_position_embeddings must be positive".into(),
            );
        }
        match self.position_embedding_type.as_deref() {
            None | Some("absolute") => Ok(()),
            Some(other) => Err(format!(
                "position_embedding_type {other:?} is not supported (only \"absolute\")"
            )),
        }
    }
}

struct Dense {
    /// `[n_out][n_in]`, as stored by PyTorch.
    weight: Floats,
    bias: Floats,
    n_in: usize,
    n_out: usize,
}

struct Norm {
    weight: Floats,
    bias: Floats,
}

struct Layer {
    /// Query, key and value, each writing its third of the `[tokens][3 · hidden]` qkv rows
    /// (kept apart rather than concatenated at load: that copy of 3.5 MB per layer cost more of a
    /// one-question process than the question's whole forward pass).
    qkv: [Dense; 3],
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    /// 8-bit copies of qkv, attn_out, intermediate and output ([`Encoder::quantize`]).
    int8: Option<Box<[QuantDense; 4]>>,
}

/// A loaded BERT encoder.
pub(crate) struct Encoder {
    word: Floats,
    position: Floats,
    token_type0: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
    activation: Activation,
}

/// Looks tensors up by name in a safetensors file, with or without a `bert.` prefix, merging an
/// adapter's deltas into the dense layers it adapts.
struct Weights<'a> {
    tensors: MappedTensors,
    prefix: &'static str,
    adapter: Option<&'a Adapter>,
    /// How many of the adapter's layers have been merged.
    merged: Cell<usize>,
    /// The adapted layers already merged, from a prepared copy (the `prepared` module).
    prepared: Option<MappedTensors>,
    /// The layers merged here, kept to write a prepared copy from (`None`: none is written).
    to_prepare: Option<RefCell<Vec<prepared::Layer>>>,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> candle_core::Result<Floats> {
        let full = format!("{}{name}", self.prefix);
        let found = if self.tensors.contains(&full) {
            full.clone()
        } else {
            // Older checkpoints name layer norm parameters gamma and beta.
            full.strip_suffix("LayerNorm.weight")
                .map(|p| format!("{p}LayerNorm.gamma"))
                .or_else(|| {
                    full.strip_suffix("LayerNorm.bias")
                        .map(|p| format!("{p}LayerNorm.beta"))
                })
                .filter(|alt| self.tensors.contains(alt))
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {full}")))?
        };
        let dims = self.tensors.shape(&found).unwrap_or_default();
        if dims != shape {
            candle_core::bail!("tensor {full} has shape {dims:?}, expected {shape:?}");
        }
        self.tensors.floats(&found)
    }

    fn dense(&self, name: &str, n_in: usize, n_out: usize) -> candle_core::Result<Dense> {
        let weight_name = format!("{name}.weight");
        let mut weight = self.get(&weight_name, &[n_out, n_in])?;
        if let Some((a, f)) = self.adapter.and_then(|a| Some((a, a.factors(name)?))) {
            if let Some(p) = &self.prepared {
                if p.shape(&weight_name) != Some(&[n_out, n_in][..]) {
                    candle_core::bail!("the prepared copy has no {weight_name} of this shape");
                }
                weight = p.floats(&weight_name)?;
            } else {
                // Shapes were checked against the model by `check_base`.
                let merged = merge(&weight, f, a.rank(), a.scale());
                if let Some(keep) = &self.to_prepare {
                    keep.borrow_mut()
                        .push((weight_name, vec![n_out, n_in], merged.clone()));
                }
                weight = merged.into();
            }
            self.merged.set(self.merged.get() + 1);
        }
        Ok(Dense {
            weight,
            bias: self.get(&format!("{name}.bias"), &[n_out])?,
            n_in,
            n_out,
        })
    }

    fn norm(&self, name: &str, n: usize) -> candle_core::Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{name}.weight"), &[n])?,
            bias: self.get(&format!("{name}.bias"), &[n])?,
        })
    }
}

/// Checks that `adapter` was trained on these weights: each adapted layer exists with the
/// factors' shapes, and the layers' weights hash to the adapter's `base_weights_sha256`.
fn check_base(w: &Weights, adapter: &Adapter, path: &Path) -> Result<()> {
    let mut hash = Sha256::new();
    for m in adapter.modules() {
        let f = adapter.factors(m).expect("every listed module has factors");
        let weight = w
            .get(&format!("{m}.weight"), &[f.n_out, f.n_in])
            .map_err(|e| adapter.mismatch(path, format!("layer {m} does not fit ({e})")))?;
        // The hash is over little-endian bytes: on a little-endian machine the array's own
        // bytes, hashed in one call (per value, the calls cost more than the hashing).
        if cfg!(target_endian = "little") {
            hash.update(bytemuck::cast_slice::<f32, u8>(&weight));
        } else {
            for v in weight.iter() {
                hash.update(v.to_le_bytes());
            }
        }
    }
    let found: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if found != adapter.base_weights_sha256() {
        return Err(adapter.mismatch(
            path,
            format!(
                "its base weights hash to {}, these to {found}",
                adapter.base_weights_sha256()
            ),
        ));
    }
    Ok(())
}

impl Encoder {
    /// Reads the weights from a safetensors file, mapped (the `weights` module), merging
    /// `adapter` into them when given (the `adapter` module): from `prepared`'s copy when it is
    /// intact, else merged here and written there for the next load (the `prepared` module).
    /// Also says whether the prepared copy was used.
    pub(crate) fn load(
        path: &Path,
        config: &BertConfig,
        adapter: Option<&Adapter>,
        prepared: Option<&PreparedCopy>,
    ) -> Result<(Self, bool)> {
        let weights_error = |source| Error::Weights {
            path: path.to_path_buf(),
            source,
        };
        let tensors = MappedTensors::open(path).map_err(weights_error)?;
        let prefix = if tensors.contains("embeddings.word_embeddings.weight") {
            ""
        } else {
            "bert."
        };
        let prepared = prepared.filter(|_| adapter.is_some());
        let ready = prepared.and_then(|p| crate::timings::time("prepared copy", || p.open()));
        let w = Weights {
            tensors,
            prefix,
            adapter,
            merged: Cell::new(0),
            to_prepare: (prepared.is_some() && ready.is_none()).then(|| RefCell::new(Vec::new())),
            prepared: ready,
        };
        // A prepared copy was written after this check passed on these very weights (its key
        // names the file's path, size and modification time).
        if let (Some(adapter), None) = (adapter, &w.prepared) {
            crate::timings::time("adapter base check", || check_base(&w, adapter, path))?;
        }
        let encoder = Self::read(&w, config).map_err(weights_error)?;
        if let Some(adapter) = adapter {
            if w.merged.get() != adapter.modules().len() {
                return Err(adapter.mismatch(
                    path,
                    format!(
                        "only {} of its {} layers are dense layers of the encoder",
                        w.merged.get(),
                        adapter.modules().len()
                    ),
                ));
            }
        }
        if let (Some(p), Some(layers)) = (prepared, w.to_prepare) {
            // A cache that cannot be written only costs the next load the merge again.
            let _ = p.write(&layers.into_inner());
        }
        Ok((encoder, w.prepared.is_some()))
    }

    fn read(w: &Weights, config: &BertConfig) -> candle_core::Result<Self> {
        let h = config.hidden_size;
        let inter = config.intermediate_size;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let q = w.dense(&format!("{p}.attention.self.query"), h, h)?;
            let k = w.dense(&format!("{p}.attention.self.key"), h, h)?;
            let v = w.dense(&format!("{p}.attention.self.value"), h, h)?;
            let qkv = [q, k, v];
            layers.push(Layer {
                qkv,
                attn_out: w.dense(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                intermediate: w.dense(&format!("{p}.intermediate.dense"), h, inter)?,
                output: w.dense(&format!("{p}.output.dense"), inter, h)?,
                output_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
                int8: None,
            });
        }
        let token_types = w.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        Ok(Self {
            word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type0: token_types[..h].to_vec(),
            embed_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
            activation: config.hidden_act,
        })
    }

    /// Runs the dense layers in 8-bit integers from now on (the `int8` module); layers whose
    /// shapes do not fit its packing stay in `f32`.
    pub(crate) fn quantize(&mut self) {
        for l in &mut self.layers {
            let q = |d: &Dense| QuantDense::new(&d.weight, &d.bias, d.n_in, d.n_out);
            let [dq, dk, dv] = &l.qkv;
            let qkv = QuantDense::new(
                &[&*dq.weight, &*dk.weight, &*dv.weight].concat(),
                &[&*dq.bias, &*dk.bias, &*dv.bias].concat(),
                dq.n_in,
                dq.n_out + dk.n_out + dv.n_out,
            );
            if let (Some(a), Some(b), Some(c), Some(d)) =
                (qkv, q(&l.attn_out), q(&l.intermediate), q(&l.output))
            {
                l.int8 = Some(Box::new([a, b, c, d]));
            }
        }
    }

    /// Mean-pooled, L2-normalised embeddings of token sequences (each at most `max_positions`
    /// long, ids below `vocab`), computed in one packed pass.
    pub(crate) fn embed(&self, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
        #[cfg(target_arch = "x86_64")]
        if crate::int8::avx512() {
            // SAFETY: the CPU has every feature the copy is compiled for (checked just above).
            return unsafe { self.embed_avx512(seqs) };
        }
        self.embed_any(seqs)
    }

    /// [`embed`](Self::embed) compiled for AVX-512: the element-wise passes (bias, GELU, softmax,
    /// layer norm, the int8 path's quantization) are inlined into it and vectorize 16 wide instead
    /// of baseline x86-64's 4. Same operations in the same order, so the same results.
    ///
    /// # Safety
    /// The CPU must have every feature it is compiled for (`crate::int8::avx512()` checks them).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn embed_avx512(&self, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
        self.embed_any(seqs)
    }

    #[inline(always)]
    fn embed_any(&self, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let hd = h / self.heads;
        let n: usize = seqs.iter().map(|s| s.len()).sum();
        if n == 0 {
            return seqs.iter().map(|_| vec![0.0; h]).collect();
        }
        let mut offsets = Vec::with_capacity(seqs.len());
        let mut x = vec![0f32; n * h];
        let mut row = 0;
        for s in seqs {
            offsets.push(row);
            for (pos, &id) in s.iter().enumerate() {
                let id = (id as usize).min(self.vocab - 1);
                let pos = pos.min(self.max_positions - 1);
                let out = &mut x[row * h..(row + 1) * h];
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (((o, &w), &p), &t) in out
                    .iter_mut()
                    .zip(word)
                    .zip(position)
                    .zip(&self.token_type0)
                {
                    *o = w + p + t;
                }
                row += 1;
            }
        }
        layer_norm(&mut x, h, &self.embed_norm, self.eps);

        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let inter = self.layers.first().map_or(0, |l| l.intermediate.n_out);
        let qkv_width = 3 * h;
        let mut qkv = vec![0f32; n * 3 * h];
        let mut ctx = vec![0f32; n * h];
        let mut a = vec![0f32; n * h];
        let mut mid = vec![0f32; n * inter];
        let mut scores = vec![0f32; longest * longest];
        let scale = 1.0 / (hd as f32).sqrt();
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            let q = layer.int8.as_deref();
            let q = |i: usize| q.map(|q| &q[i]);
            match q(0) {
                Some(fused) => fused.forward(&x, n, &mut qkv, None, &mut scratch),
                None => {
                    for (i, part) in layer.qkv.iter().enumerate() {
                        dense(part, &x, n, &mut qkv[i * h..], qkv_width, None);
                    }
                }
            }
            for (s, &o) in seqs.iter().zip(&offsets) {
                let l = s.len();
                if l == 0 {
                    continue;
                }
                let scores = &mut scores[..l * l];
                for head in 0..self.heads {
                    let q = &qkv[o * 3 * h + head * hd..];
                    let k = &qkv[o * 3 * h + h + head * hd..];
                    let v = &qkv[o * 3 * h + 2 * h + head * hd..];
                    // scores (l × l) = scale · Q Kᵀ
                    matmul(
                        scores,
                        l,
                        (l, l, hd),
                        Mat {
                            data: q,
                            rs: 3 * h,
                            cs: 1,
                        },
                        Mat {
                            data: k,
                            rs: 1,
                            cs: 3 * h,
                        },
                        scale,
                    );
                    softmax_rows(scores, l);
                    // context rows of this head (l × hd) = P V
                    matmul(
                        &mut ctx[o * h + head * hd..],
                        h,
                        (l, hd, l),
                        Mat {
                            data: scores,
                            rs: l,
                            cs: 1,
                        },
                        Mat {
                            data: v,
                            rs: 3 * h,
                            cs: 1,
                        },
                        1.0,
                    );
                }
            }
            // a = LayerNorm(x + ctx Woᵀ + bo)
            apply(
                &layer.attn_out,
                q(1),
                &ctx,
                n,
                &mut a,
                Some(&x),
                &mut scratch,
            );
            layer_norm(&mut a, h, &layer.attn_norm, self.eps);
            apply(
                &layer.intermediate,
                q(2),
                &a,
                n,
                &mut mid,
                None,
                &mut scratch,
            );
            activate(&mut mid, self.activation);
            // x = LayerNorm(a + mid Wᵀ + b)
            apply(&layer.output, q(3), &mid, n, &mut x, Some(&a), &mut scratch);
            layer_norm(&mut x, h, &layer.output_norm, self.eps);
        }

        seqs.iter()
            .zip(&offsets)
            .map(|(s, &o)| {
                let mut v = vec![0f32; h];
                for r in o..o + s.len() {
                    for (acc, &val) in v.iter_mut().zip(&x[r * h..(r + 1) * h]) {
                        *acc += val;
                    }
                }
                let count = (s.len() as f32).max(1e-9);
                v.iter_mut().for_each(|val| *val /= count);
                let norm = v.iter().map(|val| val * val).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|val| *val /= norm);
                v
            })
            .collect()
    }
}

/// A strided read-only matrix: element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl Mat<'_> {
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst` (m × n, row stride `dst_rs`, column stride 1) = `scale · lhs (m × k) · rhs (k × n)`.
fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    mnk: (usize, usize, usize),
    lhs: Mat,
    rhs: Mat,
    scale: f32,
) {
    gemm_checked(dst, dst_rs, mnk, lhs, rhs, scale, false);
}

/// [`matmul`], adding to `dst` instead of overwriting it when `accumulate`.
fn gemm_checked(
    dst: &mut [f32],
    dst_rs: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat,
    rhs: Mat,
    scale: f32,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n) && (m - 1) * dst_rs + n <= dst.len() && n <= dst_rs,
        "matrix product out of bounds"
    );
    // SAFETY: the assertion above keeps every element gemm reads (lhs: (i, p) for i < m, p < k;
    // rhs: (p, j) for p < k, j < n) and writes (dst: (i, j) at i·dst_rs + j) inside the slices; dst
    // is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// [`dense`] through its 8-bit copy when there is one.
#[inline(always)]
fn apply(
    d: &Dense,
    q: Option<&QuantDense>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    residual: Option<&[f32]>,
    scratch: &mut Scratch,
) {
    match q {
        Some(q) => {
            debug_assert_eq!(q.n_out(), d.n_out);
            q.forward(x, rows, out, residual, scratch)
        }
        None => dense(d, x, rows, out, d.n_out, residual),
    }
}

/// Token counts up to which a dense layer is multiplied out row by row ([`dense_few`]) rather
/// than by gemm: a question has a handful of tokens, and for so few rows gemm's packing of the
/// whole weight matrix into fresh memory on every call cost more than the products themselves.
const FEW_ROWS: usize = 32;

/// `out` (rows × n_out, row stride `out_rs`) = `x` (rows × n_in) · Wᵀ + b, plus `residual`
/// (rows × n_out, packed) when given.
#[inline(always)]
fn dense(
    d: &Dense,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    out_rs: usize,
    residual: Option<&[f32]>,
) {
    if rows == 0 {
        return;
    }
    let out = &mut out[..(rows - 1) * out_rs + d.n_out];
    for r in 0..rows {
        let o_row = &mut out[r * out_rs..r * out_rs + d.n_out];
        match residual {
            Some(res) => {
                let r_row = &res[r * d.n_out..(r + 1) * d.n_out];
                for ((o, &rv), &b) in o_row.iter_mut().zip(r_row).zip(&d.bias) {
                    *o = rv + b;
                }
            }
            None => o_row.copy_from_slice(&d.bias),
        }
    }
    if rows <= FEW_ROWS {
        return dense_few(&d.weight, d.n_in, d.n_out, &x[..rows * d.n_in], out, out_rs);
    }
    gemm_checked(
        out,
        out_rs,
        (rows, d.n_out, d.n_in),
        Mat {
            data: x,
            rs: d.n_in,
            cs: 1,
        },
        Mat {
            data: &d.weight,
            rs: 1,
            cs: d.n_in,
        },
        1.0,
        true,
    );
}

/// `out` (row stride `out_rs`) += `x` (rows × n_in) · Wᵀ for a few rows, four weight rows at a
/// time against each input row (each weight row is read from memory once, the input rows stay in
/// cache), in 16 lanes per dot product so that it vectorizes.
#[inline(always)]
fn dense_few(w: &[f32], n_in: usize, n_out: usize, x: &[f32], out: &mut [f32], out_rs: usize) {
    let mut o = 0;
    while o + 4 <= n_out {
        let ws = [
            &w[o * n_in..(o + 1) * n_in],
            &w[(o + 1) * n_in..(o + 2) * n_in],
            &w[(o + 2) * n_in..(o + 3) * n_in],
            &w[(o + 3) * n_in..(o + 4) * n_in],
        ];
        for (r, xr) in x.chunks_exact(n_in).enumerate() {
            let d = dot4(xr, ws);
            for (i, v) in d.into_iter().enumerate() {
                out[r * out_rs + o + i] += v;
            }
        }
        o += 4;
    }
    for o in o..n_out {
        let wr = &w[o * n_in..(o + 1) * n_in];
        for (r, xr) in x.chunks_exact(n_in).enumerate() {
            out[r * out_rs + o] += dot4(xr, [wr; 4])[0];
        }
    }
}

/// The dot products of `x` with four vectors of its length, each summed in 16 lanes.
#[inline(always)]
fn dot4(x: &[f32], [w0, w1, w2, w3]: [&[f32]; 4]) -> [f32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
    let n = x.len() / 16 * 16;
    let lanes = |v: &[f32], c: usize| -> [f32; 16] { v[c..c + 16].try_into().expect("16 values") };
    for c in (0..n).step_by(16) {
        let (xc, c0, c1, c2, c3) = (
            lanes(x, c),
            lanes(w0, c),
            lanes(w1, c),
            lanes(w2, c),
            lanes(w3, c),
        );
        for l in 0..16 {
            a0[l] += xc[l] * c0[l];
            a1[l] += xc[l] * c1[l];
            a2[l] += xc[l] * c2[l];
            a3[l] += xc[l] * c3[l];
        }
    }
    let tail = |w: &[f32]| -> f32 { x[n..].iter().zip(&w[n..]).map(|(a, b)| a * b).sum() };
    [
        a0.iter().sum::<f32>() + tail(w0),
        a1.iter().sum::<f32>() + tail(w1),
        a2.iter().sum::<f32>() + tail(w2),
        a3.iter().sum::<f32>() + tail(w3),
    ]
}

#[inline(always)]
fn layer_norm(x: &mut [f32], h: usize, norm: &Norm, eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mean = sum(row) / h as f32;
        row.iter_mut().for_each(|v| *v -= mean);
        let var = sum_sq(row) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, &w), &b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
            *v = *v * inv * w + b;
        }
    }
}

#[inline(always)]
fn softmax_rows(x: &mut [f32], n: usize) {
    for row in x.chunks_exact_mut(n) {
        let top = max(row);
        row.iter_mut().for_each(|v| *v = exp_nonpositive(*v - top));
        let inv = 1.0 / sum(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Sum in 16 independent lanes, so that the compiler can vectorize it (a plain `sum` of floats
/// must add in order).
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum_sq(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

#[inline(always)]
fn activate(x: &mut [f32], act: Activation) {
    match act {
        Activation::Gelu => x
            .iter_mut()
            .for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2))),
        Activation::GeluApproximate => x.iter_mut().for_each(|v| {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            *v = 0.5 * *v * (1.0 + (c * (*v + 0.044715 * *v * *v * *v)).tanh());
        }),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

/// `e^x` for `x <= 0` (softmax after subtracting the row's maximum), branch-free so that it
/// vectorizes, within 2e-7 relative of `f32::exp` (tested); below -87 it returns e^-87 ≈ 1.6e-38
/// instead of a subnormal, which no softmax row can tell apart from 0.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = crate::int8::round_small(x * std::f32::consts::LOG2_E);
    // r = x - n·ln2 in two parts (Cody–Waite), |r| <= ln2 / 2.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4 * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    f32::from_bits(((n as i32 + 127) << 23) as u32) * e
}

/// erf for `f32` as a branch-free rational function (the approximation Eigen and XLA use), so that
/// GELU vectorizes; within 1e-6 of the exact value (tested against `libm::erff`). Plain `*` and `+`
/// on purpose: `mul_add` without the `fma` target feature is a slow library call.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The few-rows path against gemm, for row counts on both sides of [`FEW_ROWS`] and widths
    /// that are and are not multiples of the 16 lanes and the four-row blocks, writing into a
    /// strided output (the qkv thirds) with and without a residual.
    #[test]
    fn few_rows_match_gemm() {
        let val =
            |i: usize, k: usize| ((i.wrapping_mul(2654435761) ^ k) % 997) as f32 / 997.0 - 0.5;
        for (n_in, n_out) in [(384, 384), (37, 22), (16, 5)] {
            let d = Dense {
                weight: (0..n_in * n_out)
                    .map(|i| val(i, 1))
                    .collect::<Vec<_>>()
                    .into(),
                bias: (0..n_out).map(|i| val(i, 2)).collect::<Vec<_>>().into(),
                n_in,
                n_out,
            };
            for rows in [1, 3, FEW_ROWS] {
                let x: Vec<f32> = (0..rows * n_in).map(|i| val(i, 3)).collect();
                let res: Vec<f32> = (0..rows * n_out).map(|i| val(i, 4)).collect();
                for residual in [None, Some(res.as_slice())] {
                    let stride = 2 * n_out + 3;
                    let mut few = vec![7f32; rows * stride];
                    dense(&d, &x, rows, &mut few[n_out..], stride, residual);
                    let mut reference = vec![0f32; rows * n_out];
                    for (r, row) in reference.chunks_exact_mut(n_out).enumerate() {
                        for (o, v) in row.iter_mut().enumerate() {
                            *v = d.bias[o] + residual.map_or(0.0, |res| res[r * n_out + o]);
                        }
                    }
                    gemm_checked(
                        &mut reference,
                        n_out,
                        (rows, n_out, n_in),
                        Mat {
                            data: &x,
                            rs: n_in,
                            cs: 1,
                        },
                        Mat {
                            data: &d.weight,
                            rs: 1,
                            cs: n_in,
                        },
                        1.0,
                        true,
                    );
                    for r in 0..rows {
                        let row = &few[r * stride..(r + 1) * stride];
                        assert!(row[..n_out]
                            .iter()
                            .chain(&row[2 * n_out..])
                            .all(|&v| v == 7.0));
                        for (a, b) in row[n_out..2 * n_out].iter().zip(&reference[r * n_out..]) {
                            assert!(
                                (a - b).abs() < 1e-4,
                                "{n_in}x{n_out}, {rows} rows: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn exp_is_within_2e7_relative_of_std() {
        let mut worst = 0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (fast, exact) = (super::exp_nonpositive(x), x.exp());
            worst = worst.max((fast - exact).abs() / exact);
        }
        assert!(worst < 2e-7, "max relative error {worst}");
        assert!(super::exp_nonpositive(-1e9) < 1e-37);
        assert_eq!(super::exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn erf_is_within_1e6_of_libm() {
        let mut worst = 0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((super::erf(x) - libm::erff(x)).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert!((super::erf(100.0) - 1.0).abs() < 1e-6);
        assert!((super::erf(-100.0) + 1.0).abs() < 1e-6);
    }
}

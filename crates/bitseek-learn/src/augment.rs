//! Representation-level augmentation (RACS, Li et al., EMNLP 2022; methods.md §2): new positive
//! pairs made from the float embeddings alone, `h⁺ = α ⊙ h + β ⊙ h′` with `h′` another example of
//! the batch, so training gets more positives without running an embedding model again.
//!
//! Four operations, with the parameters of the authors' code: linear inter/extrapolation
//! (`λ ~ U(0.9, 1.1)`, the same partner and `λ` for a query and its document), binary interpolation
//! (a per-dimension mask kept with probability 0.75, different partners for query and document),
//! Gaussian scaling (`g ~ N(1, 0.1²)` per element) and dropout (`p = 0.1`, kept entries scaled by
//! `1/(1 − p)`). Each copy picks one operation at random.
//!
//! For ablations ([`parse_ops`]) each operation can be used alone, linear interpolation
//! (`λ ~ U(0.9, 1)`) and extrapolation (`λ ~ U(1, 1.1)`) separately as the paper names them.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Which augmentation, as named on the command line (`none`, `racs`, `racs:N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Augment {
    None,
    /// RACS with `copies` augmented copies of each pair appended as extra positives.
    Racs {
        copies: usize,
    },
}

impl std::str::FromStr for Augment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Augment::None),
            "racs" => Ok(Augment::Racs { copies: 2 }),
            _ => match s.strip_prefix("racs:").map(str::parse::<usize>) {
                Some(Ok(copies @ 1..=16)) => Ok(Augment::Racs { copies }),
                _ => Err(format!(
                    "unknown augmentation {s:?}: expected none, racs or racs:N with N in 1..=16"
                )),
            },
        }
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Augment::None => f.write_str("none"),
            Augment::Racs { copies } => write!(f, "racs:{copies}"),
        }
    }
}

/// The strength of each operation; [`RacsParams::neutral`] makes every one the identity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RacsParams {
    /// Range of the interpolation weight `λ`.
    pub lambda: (f32, f32),
    /// Probability that binary interpolation keeps a dimension of the original.
    pub keep: f32,
    /// Standard deviation of Gaussian scaling.
    pub sigma: f32,
    /// Dropout probability.
    pub dropout: f32,
}

impl Default for RacsParams {
    fn default() -> Self {
        RacsParams {
            lambda: (0.9, 1.1),
            keep: 0.75,
            sigma: 0.1,
            dropout: 0.1,
        }
    }
}

impl RacsParams {
    /// Settings under which every operation returns its input unchanged.
    pub fn neutral() -> Self {
        RacsParams {
            lambda: (1.0, 1.0),
            keep: 1.0,
            sigma: 0.0,
            dropout: 0.0,
        }
    }
}

/// The operations: the four of the authors' code, and linear inter- and extrapolation apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Linear inter- or extrapolation, `λ` over the whole range.
    Linear,
    Binary,
    Gaussian,
    Dropout,
    /// Linear interpolation only: `λ` between the range's low end and 1.
    Interpolate,
    /// Linear extrapolation only: `λ` between 1 and the range's high end.
    Extrapolate,
}

/// The operations RACS's code picks from (`racs`, `all`).
pub const OPS: [Op; 4] = [Op::Linear, Op::Binary, Op::Gaussian, Op::Dropout];

/// The operation names [`parse_ops`] takes, with what each selects.
pub const OP_NAMES: [(&str, Op); 6] = [
    ("linear", Op::Linear),
    ("interpolation", Op::Interpolate),
    ("extrapolation", Op::Extrapolate),
    ("binary", Op::Binary),
    ("gaussian", Op::Gaussian),
    ("dropout", Op::Dropout),
];

/// The operations named in `s`: `all` (= [`OPS`]) or a comma-separated list of [`OP_NAMES`].
pub fn parse_ops(s: &str) -> Result<Vec<Op>, String> {
    if s == "all" {
        return Ok(OPS.to_vec());
    }
    s.split(',')
        .map(|name| {
            OP_NAMES
                .iter()
                .find(|(n, _)| *n == name.trim())
                .map(|&(_, op)| op)
                .ok_or_else(|| {
                    let names: Vec<&str> = OP_NAMES.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown RACS operation {name:?}: expected all or a comma-separated list of {}",
                        names.join(", ")
                    )
                })
        })
        .collect()
}

/// A random permutation of `0..n` with no fixed point (for `n ≥ 2`): a partner for every row.
pub fn partners<R: Rng>(n: usize, rng: &mut R) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut out = vec![0; n];
    for i in 0..n {
        // Each row's partner is the next one in a random cycle, never itself.
        out[order[i]] = order[(i + 1) % n];
    }
    out
}

/// Applies `op` to a batch of `n` query/document pairs (row-major, `dim` wide); returns the
/// augmented copies, same shapes.
pub fn apply<R: Rng>(
    op: Op,
    p: &RacsParams,
    query: &[f32],
    doc: &[f32],
    dim: usize,
    rng: &mut R,
) -> (Vec<f32>, Vec<f32>) {
    let n = query.len() / dim;
    let mut q = query.to_vec();
    let mut d = doc.to_vec();
    match op {
        Op::Linear | Op::Interpolate | Op::Extrapolate => {
            let (lo, hi) = match op {
                Op::Interpolate => (p.lambda.0.min(1.0), 1.0),
                Op::Extrapolate => (1.0, p.lambda.1.max(1.0)),
                _ => p.lambda,
            };
            let partner = partners(n, rng);
            for (i, &j) in partner.iter().enumerate() {
                let lam = if lo < hi { rng.gen_range(lo..hi) } else { lo };
                for (out, src) in [(&mut q, query), (&mut d, doc)] {
                    for k in 0..dim {
                        out[i * dim + k] = lam * src[i * dim + k] + (1.0 - lam) * src[j * dim + k];
                    }
                }
            }
        }
        Op::Binary => {
            // One mask per call, shared by the batch; different partners for the two sides.
            let mask: Vec<bool> = (0..dim).map(|_| rng.gen::<f32>() < p.keep).collect();
            for (out, src) in [(&mut q, query), (&mut d, doc)] {
                let partner = partners(n, rng);
                for (i, &j) in partner.iter().enumerate() {
                    for k in 0..dim {
                        if !mask[k] {
                            out[i * dim + k] = src[j * dim + k];
                        }
                    }
                }
            }
        }
        Op::Gaussian => {
            if p.sigma > 0.0 {
                let g = Normal::new(1.0f32, p.sigma).expect("positive sigma");
                for v in q.iter_mut().chain(d.iter_mut()) {
                    *v *= g.sample(rng);
                }
            }
        }
        Op::Dropout => {
            if p.dropout > 0.0 {
                let scale = 1.0 / (1.0 - p.dropout);
                for v in q.iter_mut().chain(d.iter_mut()) {
                    *v = if rng.gen::<f32>() < p.dropout {
                        0.0
                    } else {
                        *v * scale
                    };
                }
            }
        }
    }
    (q, d)
}

/// The originals followed by `copies` augmented copies (one random operation each), with the
/// group of every row (`ids` repeated), so copies of one pair are each other's positives.
pub fn expand<R: Rng>(
    copies: usize,
    p: &RacsParams,
    query: &[f32],
    doc: &[f32],
    ids: &[u64],
    dim: usize,
    rng: &mut R,
) -> (Vec<f32>, Vec<f32>, Vec<u64>) {
    expand_with(&OPS, copies, p, query, doc, ids, dim, rng)
}

/// [`expand`] picking each copy's operation from `ops` (one operation alone for ablations).
#[allow(clippy::too_many_arguments)]
pub fn expand_with<R: Rng>(
    ops: &[Op],
    copies: usize,
    p: &RacsParams,
    query: &[f32],
    doc: &[f32],
    ids: &[u64],
    dim: usize,
    rng: &mut R,
) -> (Vec<f32>, Vec<f32>, Vec<u64>) {
    assert!(!ops.is_empty(), "expand_with needs at least one operation");
    let mut q = query.to_vec();
    let mut d = doc.to_vec();
    let mut g = ids.to_vec();
    for _ in 0..copies {
        let op = ops[rng.gen_range(0..ops.len())];
        let (aq, ad) = apply(op, p, query, doc, dim, rng);
        q.extend(aq);
        d.extend(ad);
        g.extend_from_slice(ids);
    }
    (q, d, g)
}

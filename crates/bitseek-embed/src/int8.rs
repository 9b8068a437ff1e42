//! Dense layers in 8-bit integers: the optional faster path of the encoder.
//!
//! Four fifths of embedding time is the dense layers' matrix products (profile of all-MiniLM-L6-v2
//! on code). In `f32` they already run near the core's FMA peak; 8-bit integers go further on
//! CPUs with AVX-512 VNNI, whose `vpdpbusd` does 64 multiply-adds per instruction against 16 for
//! an `f32` FMA. This is the usual dynamic quantization of inference engines:
//!
//! * weights: symmetric per output column, `w ≈ s_c · q`, `q ∈ [-127, 127]`, quantized once at load;
//! * activations: asymmetric per row at run time, `x ≈ m_r + s_r · a`, `a ∈ [0, 255]` (unsigned,
//!   as `vpdpbusd` wants), `m_r` the row's minimum: all 256 steps cover the values the row has.
//!   A symmetric code (`x ≈ s_r · a`, `a ∈ [-127, 127]`) spends half its steps on values a
//!   one-sided row never takes (the GELU output feeding each feed-forward layer's second
//!   matrix is ≥ −0.17), and on the dev sets it cost 0.54% of Rust's MRR against f32;
//! * `y = s_r · s_c · Σ a·q + m_r · s_c · Σ q + bias` (+ residual), the products accumulated
//!   exactly in `i32`, `Σ q` once per column at load.
//!
//! The kernel has a scalar twin (the reference of the tests) used where VNNI is missing.

/// Output columns per packed block: one 512-bit register of `i32` accumulators.
const BLOCK: usize = 16;

/// A dense layer `y = x Wᵀ + b` with 8-bit weights.
pub(crate) struct QuantDense {
    n_in: usize,
    n_out: usize,
    /// `[n_out / 16][n_in / 4][16 columns][4 inputs]`: one 64-byte load feeds a `vpdpbusd`.
    packed: Vec<i8>,
    w_scale: Vec<f32>,
    /// `Σ_k q[c][k]`, times each row's minimum: the activations' offset.
    q_sum: Vec<f32>,
    bias: Vec<f32>,
}

impl QuantDense {
    /// Quantizes `weight` (`[n_out][n_in]`, PyTorch's layout). `None` when the shape does not
    /// fit the packing (`n_in` a multiple of 4, `n_out` of 16): that layer stays in `f32`.
    pub(crate) fn new(weight: &[f32], bias: &[f32], n_in: usize, n_out: usize) -> Option<Self> {
        if !n_in.is_multiple_of(4) || !n_out.is_multiple_of(BLOCK) || n_in == 0 || n_out == 0 {
            return None;
        }
        let k4 = n_in / 4;
        let mut packed = vec![0i8; n_out * n_in];
        let mut w_scale = vec![0f32; n_out];
        let mut q_sum = vec![0f32; n_out];
        for c in 0..n_out {
            let row = &weight[c * n_in..(c + 1) * n_in];
            let max = row.iter().fold(0f32, |m, &w| m.max(w.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            w_scale[c] = scale;
            let (block, lane) = (c / BLOCK, c % BLOCK);
            let mut sum = 0i32;
            for (k, &w) in row.iter().enumerate() {
                let q = (w / scale).round().clamp(-127.0, 127.0) as i8;
                sum += q as i32;
                packed[((block * k4 + k / 4) * BLOCK + lane) * 4 + k % 4] = q;
            }
            q_sum[c] = sum as f32;
        }
        Some(QuantDense {
            n_in,
            n_out,
            packed,
            w_scale,
            q_sum,
            bias: bias.to_vec(),
        })
    }

    pub(crate) fn n_out(&self) -> usize {
        self.n_out
    }

    /// `out` (rows × n_out) = `x` (rows × n_in) · Wᵀ + b, plus `residual` when given.
    #[inline(always)]
    pub(crate) fn forward(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        residual: Option<&[f32]>,
        scratch: &mut Scratch,
    ) {
        let (n_in, n_out) = (self.n_in, self.n_out);
        assert!(x.len() >= rows * n_in && out.len() >= rows * n_out);
        scratch.a.resize(rows * n_in, 0);
        scratch.row_scale.resize(rows, (0.0, 0.0));
        for ((xr, ar), s) in x
            .chunks_exact(n_in)
            .zip(scratch.a.chunks_exact_mut(n_in))
            .zip(scratch.row_scale.iter_mut())
            .take(rows)
        {
            *s = quantize_row(xr, ar);
        }
        scratch.acc.resize(rows * n_out, 0);
        products(
            &scratch.a,
            rows,
            n_in,
            &self.packed,
            n_out,
            &mut scratch.acc,
        );
        let rows_out = out[..rows * n_out].chunks_exact_mut(n_out);
        let rows_acc = scratch.acc.chunks_exact(n_out);
        for (r, (o, acc)) in rows_out.zip(rows_acc).enumerate() {
            let (sr, min) = scratch.row_scale[r];
            for (((o, &a), &qs), (&ws, &b)) in o
                .iter_mut()
                .zip(acc)
                .zip(&self.q_sum)
                .zip(self.w_scale.iter().zip(&self.bias))
            {
                *o = (a as f32 * sr + min * qs) * ws + b;
            }
            if let Some(res) = residual {
                for (o, &v) in o.iter_mut().zip(&res[r * n_out..(r + 1) * n_out]) {
                    *o += v;
                }
            }
        }
    }
}

/// Buffers reused across layers and calls.
#[derive(Default)]
pub(crate) struct Scratch {
    a: Vec<u8>,
    /// Each row's step and minimum.
    row_scale: Vec<(f32, f32)>,
    acc: Vec<i32>,
}

/// Quantizes one row to `a ∈ [0, 255]` with `x ≈ min + step · a`; returns `(step, min)`.
#[inline(always)]
fn quantize_row(x: &[f32], out: &mut [u8]) -> (f32, f32) {
    let (min, max) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if x.is_empty() {
        return (1.0, 0.0);
    }
    let step = if max > min { (max - min) / 255.0 } else { 1.0 };
    let inv = 1.0 / step;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = round_small((v - min) * inv).clamp(0.0, 255.0) as u8;
    }
    (step, min)
}

/// Rounds to the nearest integer (ties to even) for `|x| < 2²²` by adding and subtracting
/// 1.5 · 2²³: plain arithmetic that vectorizes, where `f32::round` is a library call on baseline
/// x86-64.
#[inline(always)]
pub(crate) fn round_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// `acc[r][c] = Σ_k a[r][k] · q[c][k]` (`a` unsigned), exactly.
fn products(a: &[u8], rows: usize, k: usize, packed: &[i8], n_out: usize, acc: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if vnni() {
        // SAFETY: the CPU has the features the kernel is compiled for (checked just above), and
        // the kernel indexes only inside the slices (its asserts).
        unsafe { vnni::products(a, rows, k, packed, n_out, acc) };
        return;
    }
    products_scalar(a, rows, k, packed, n_out, acc);
}

/// The scalar twin of the VNNI kernel.
pub(crate) fn products_scalar(
    a: &[u8],
    rows: usize,
    k: usize,
    packed: &[i8],
    n_out: usize,
    acc: &mut [i32],
) {
    let k4 = k / 4;
    for r in 0..rows {
        let ar = &a[r * k..(r + 1) * k];
        for c in 0..n_out {
            let (block, lane) = (c / BLOCK, c % BLOCK);
            let mut s = 0i32;
            for (kk, &av) in ar.iter().enumerate() {
                let q = packed[((block * k4 + kk / 4) * BLOCK + lane) * 4 + kk % 4];
                s += av as i32 * q as i32;
            }
            acc[r * n_out + c] = s;
        }
    }
}

/// Whether the 8-bit dense layers run on their fast kernel here (AVX-512 VNNI, not capped by
/// `BITSEEK_KERNELS`). Elsewhere they run on the scalar twin, several times slower than the `f32`
/// path, so callers choosing a default precision ask this first.
pub fn int8_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        vnni()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the VNNI kernel runs on this CPU (checked once; `BITSEEK_KERNELS=scalar` or `avx2`
/// turns it off, as for the search kernels).
#[cfg(target_arch = "x86_64")]
pub(crate) fn vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| avx512() && is_x86_feature_detected!("avx512vnni"))
}

/// Whether the encoder's AVX-512 copy runs on this CPU (checked once). `BITSEEK_KERNELS` is read
/// by `bitseek-codes`' parser, so one value caps the search kernels and the encoder alike.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    use bitseek_codes::kernels::{cap, Isa};
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        cap().is_none_or(|cap| cap >= Isa::Avx512)
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    })
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::BLOCK;
    use std::arch::x86_64::*;

    /// Rows per register tile.
    const MR: usize = 4;

    /// `acc[r][c] = Σ_k a[r][k] · q[c][k]` for the packed weights of [`super::QuantDense`], four
    /// rows at a time. Panics (before any raw access) when a slice is shorter than the shapes say.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI (`super::vnni()` checks them).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn products(
        a: &[u8],
        rows: usize,
        k: usize,
        packed: &[i8],
        n_out: usize,
        acc: &mut [i32],
    ) {
        assert!(k.is_multiple_of(4) && n_out.is_multiple_of(BLOCK));
        assert!(a.len() >= rows * k && packed.len() >= n_out * k && acc.len() >= rows * n_out);
        let mut r = 0;
        while r + MR <= rows {
            // SAFETY: the caller guarantees the features, and the asserts above give `tile` the
            // shapes it needs for rows `r..r + MR`, all below `rows`.
            unsafe { tile::<MR>(a, r, k, packed, n_out, acc) };
            r += MR;
        }
        // SAFETY: as above, for the remaining rows `r..rows`.
        unsafe {
            match rows - r {
                3 => tile::<3>(a, r, k, packed, n_out, acc),
                2 => tile::<2>(a, r, k, packed, n_out, acc),
                1 => tile::<1>(a, r, k, packed, n_out, acc),
                _ => {}
            }
        }
    }

    /// Rows `r0..r0 + R` against every column, two 16-column blocks at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI; `k` must be a multiple of 4 and `n_out` of
    /// [`BLOCK`]; `a` must hold at least `(r0 + R) · k` values, `packed` at least `n_out · k` and
    /// `acc` at least `(r0 + R) · n_out`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile<const R: usize>(
        a: &[u8],
        r0: usize,
        k: usize,
        packed: &[i8],
        n_out: usize,
        acc: &mut [i32],
    ) {
        let k4 = k / 4;
        let blocks = n_out / BLOCK;
        // SAFETY: `r0 · k <= a.len()` (the caller's shapes), so the offset stays inside `a`.
        let ap = unsafe { a.as_ptr().add(r0 * k) };
        let mut b = 0;
        while b < blocks {
            let two = b + 1 < blocks;
            // Column block `b` is the `k4 · 64` bytes at `b · k4 · 64` of `packed`, which holds
            // `blocks · k4 · 64 = n_out · k` bytes; `b + 1` is used only when it is a block too.
            // SAFETY: `b < blocks`, so the offset stays inside `packed`.
            let w0p = unsafe { packed.as_ptr().add(b * k4 * BLOCK * 4) };
            let w1p = if two {
                // SAFETY: `b + 1 < blocks`, so the offset stays inside `packed`.
                unsafe { packed.as_ptr().add((b + 1) * k4 * BLOCK * 4) }
            } else {
                w0p
            };
            let mut s0 = [_mm512_setzero_si512(); R];
            let mut s1 = [_mm512_setzero_si512(); R];
            for kk in 0..k4 {
                // SAFETY: `kk < k4`: the 64 bytes at `kk · 64` lie inside each column block;
                // loadu needs no alignment.
                let (w0, w1) = unsafe {
                    (
                        _mm512_loadu_si512(w0p.add(kk * 64) as *const _),
                        _mm512_loadu_si512(w1p.add(kk * 64) as *const _),
                    )
                };
                for i in 0..R {
                    // SAFETY: row `r0 + i < r0 + R`, input `kk · 4 + 3 < k`: the four bytes lie
                    // inside `a`; read_unaligned needs no alignment.
                    let x = unsafe { (ap.add(i * k + kk * 4) as *const i32).read_unaligned() };
                    let x = _mm512_set1_epi32(x);
                    s0[i] = _mm512_dpbusd_epi32(s0[i], x, w0);
                    s1[i] = _mm512_dpbusd_epi32(s1[i], x, w1);
                }
            }
            for i in 0..R {
                // SAFETY: row `r0 + i < r0 + R` and columns `b · 16 .. b · 16 + 16` (and the next
                // 16 when `two`) `<= n_out`: the 16 (or 32) `i32` lie inside `acc`, which is
                // borrowed mutably; storeu needs no alignment.
                unsafe {
                    let out = acc.as_mut_ptr().add((r0 + i) * n_out + b * BLOCK);
                    _mm512_storeu_si512(out as *mut _, s0[i]);
                    if two {
                        _mm512_storeu_si512(out.add(BLOCK) as *mut _, s1[i]);
                    }
                }
            }
            b += 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    #[test]
    fn kernel_equals_its_scalar_twin_for_every_row_count_and_block_parity() {
        // Said past libtest's capture, so a run without VNNI shows it compared the twin to itself.
        #[cfg(target_arch = "x86_64")]
        let fast = vnni();
        #[cfg(not(target_arch = "x86_64"))]
        let fast = false;
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            if fast {
                "int8.rs: checked the VNNI kernel against its scalar twin\n".as_bytes()
            } else {
                "int8.rs: no VNNI kernel on this CPU (or BITSEEK_KERNELS caps it): only the scalar \
                 twin ran\n"
                    .as_bytes()
            },
        );
        let mut seed = 7;
        for &(rows, k, n_out) in &[
            (1, 4, 16),
            (3, 8, 48),
            (4, 384, 32),
            (7, 12, 80),
            (9, 36, 16),
        ] {
            let a: Vec<u8> = (0..rows * k)
                .map(|_| (lcg(&mut seed) * 510.0 + 128.0) as u8)
                .collect();
            let packed: Vec<i8> = (0..n_out * k)
                .map(|_| (lcg(&mut seed) * 254.0) as i8)
                .collect();
            let mut fast = vec![0i32; rows * n_out];
            let mut slow = vec![1i32; rows * n_out];
            products(&a, rows, k, &packed, n_out, &mut fast);
            products_scalar(&a, rows, k, &packed, n_out, &mut slow);
            assert_eq!(fast, slow, "rows {rows} k {k} n_out {n_out}");
        }
    }

    #[test]
    fn quantized_layer_is_close_to_the_float_one() {
        let (n_in, n_out, rows) = (64, 32, 5);
        let mut seed = 11;
        let w: Vec<f32> = (0..n_in * n_out).map(|_| lcg(&mut seed)).collect();
        let b: Vec<f32> = (0..n_out).map(|_| lcg(&mut seed)).collect();
        let x: Vec<f32> = (0..rows * n_in).map(|_| lcg(&mut seed) * 4.0).collect();
        let res: Vec<f32> = (0..rows * n_out).map(|_| lcg(&mut seed)).collect();
        let q = QuantDense::new(&w, &b, n_in, n_out).unwrap();
        let mut out = vec![0f32; rows * n_out];
        q.forward(&x, rows, &mut out, Some(&res), &mut Scratch::default());
        let mut worst = 0f32;
        for r in 0..rows {
            for c in 0..n_out {
                let exact: f32 = (0..n_in)
                    .map(|i| x[r * n_in + i] * w[c * n_in + i])
                    .sum::<f32>()
                    + b[c]
                    + res[r * n_out + c];
                worst = worst.max((out[r * n_out + c] - exact).abs());
            }
        }
        // Inputs up to 2 and weights up to 0.5 quantized to 1/254 of their range, over 64 terms.
        assert!(worst < 0.05, "worst error {worst}");
        assert!(QuantDense::new(&w, &b, 63, 32).is_none());
        assert!(QuantDense::new(&w[..64 * 24], &b[..24], 64, 24).is_none());
    }

    #[test]
    fn zero_rows_and_weights_quantize_without_dividing_by_zero() {
        let q = QuantDense::new(&[0.0; 64], &[1.0; 16], 4, 16).unwrap();
        let mut out = vec![0f32; 16];
        q.forward(&[0.0; 4], 1, &mut out, None, &mut Scratch::default());
        assert!(out.iter().all(|&v| v == 1.0));
    }
}

//! The flat index against brute force: exact on codes, exact on floats after rescoring, stable
//! across threads, blocks, save/open, id orders and metamorphic changes of the data.

use bitseek_codes::quantizer::{Factor, Quantizer, QuantizerKind, QueryMode};
use bitseek_codes::BitPlanes;
use bitseek_index::eval::{exact_ids, recall};
use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, Hit, Index, IndexError, Keep, Metric, SearchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const DIM: usize = 100;

/// Clustered vectors with a shared offset, like sentence embeddings.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = &centres[rng.gen_range(0..centres.len())];
        out.extend(c.iter().map(|v| 0.3 + v + rng.gen_range(-0.6f32..0.6)));
    }
    out
}

fn build(
    data: &[f32],
    ids: Option<Vec<u64>>,
    kind: QuantizerKind,
    metric: Metric,
    keep: Keep,
) -> Index {
    let v = Vectors {
        dim: DIM,
        data: data.to_vec(),
        ids,
    };
    let opts = BuildOptions {
        quantizer: kind,
        metric,
        keep,
        ..Default::default()
    };
    Index::build(v, Path::new("test.npy"), &opts, &|_| {}).expect("valid vectors build")
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn raw(k: usize) -> SearchParams {
    SearchParams {
        k,
        oversample: 1,
        rescore: false,
        mode: QueryMode::Asymmetric,
        query_bits: None,
    }
}

/// One row's score under a from-scratch reading of its code: the exact key and a bound on how far
/// the index's `f32` arithmetic may stray from it.
struct Reference {
    key: f64,
    tol: f64,
}

/// Scores every stored row against `query` from the decoded codes, in `f64`, without the kernels
/// or the estimator's popcount algebra: sign codes count differing bits one by one; lattice codes
/// take the inner product `⟨U − c, lo + Δ·Q⟩` of the decoded lattice values `U` and the decoded
/// query levels `Q` directly, then scale it and add `DotMean` as the RaBitQ estimator defines.
fn reference_scores(index: &Index, data_rows: usize, query: &[f32]) -> Vec<Reference> {
    let q = index.prepare_queries(query, DIM).expect("valid query");
    let quantizer = index.quantizer();
    let codes = quantizer.encode(&normalised(index, &q, data_rows));
    let qc = quantizer.encode_query(&q, QueryMode::Asymmetric, 0);
    let planes = BitPlanes {
        len: codes.len,
        planes: codes.planes,
        words: codes.words,
        data: codes.bits.clone(),
    };
    let w = codes.words;
    let bit = |words: &[u64], plane: usize, i: usize| (words[plane * w + i / 64] >> (i % 64)) & 1;
    let level = |words: &[u64], planes: usize, i: usize| -> f64 {
        (0..planes).map(|p| (bit(words, p, i) << p) as f64).sum()
    };
    (0..codes.len)
        .map(|r| {
            let code = planes.get(r);
            match quantizer {
                Quantizer::Sign(_) => {
                    let differ = (0..w * 64)
                        .filter(|&i| bit(&code, 0, i) != bit(&qc.planes, 0, i))
                        .count();
                    Reference {
                        key: -(differ as f64),
                        tol: 0.0,
                    }
                }
                Quantizer::Lattice(l) => {
                    // Asymmetric lattice queries are the levels `v ≈ lo + Δ·Q` with `Δ = a` and
                    // `lo = b`; the code is the lattice point `y = U − c`.
                    let (delta, lo, c) = (qc.a as f64, qc.b as f64, l.offset() as f64);
                    let (mut y_v, mut magnitude) = (0f64, 0f64);
                    for i in 0..l.padded {
                        let u = level(&code, codes.planes, i);
                        let qv = level(&qc.planes, qc.qplanes, i);
                        y_v += (u - c) * (lo + delta * qv);
                        magnitude += u * (lo.abs() + delta * qv) + c * (lo.abs() + delta * qv);
                    }
                    let f = |k: Factor| codes.factors[k as usize][r] as f64;
                    let scale = f(Factor::Scale);
                    // The index evaluates `Scale·(Δ⟨U,Q⟩ + lo·ΣU + c') + DotMean` in f32: a few
                    // roundings, each within 2^-24 of the largest partial sum.
                    Reference {
                        key: scale * y_v + f(Factor::DotMean),
                        tol: 8.0
                            * f32::EPSILON as f64
                            * (scale.abs() * magnitude + f(Factor::DotMean).abs()),
                    }
                }
                Quantizer::Ternary(t) => {
                    // Ternary values `t = 2s − n` against the query levels `v ≈ lo + Δ·Q`.
                    let (delta, lo) = (qc.a as f64, qc.b as f64);
                    let (mut t_v, mut magnitude) = (0f64, 0f64);
                    for i in 0..t.padded {
                        let tv = 2.0 * bit(&code, 1, i) as f64 - bit(&code, 0, i) as f64;
                        let v = lo + delta * level(&qc.planes, qc.qplanes, i);
                        t_v += tv * v;
                        magnitude +=
                            tv.abs() * (lo.abs() + delta * level(&qc.planes, qc.qplanes, i));
                    }
                    let f = |k: Factor| codes.factors[k as usize][r] as f64;
                    let scale = f(Factor::Scale);
                    Reference {
                        key: scale * t_v + f(Factor::DotMean),
                        tol: 8.0
                            * f32::EPSILON as f64
                            * (scale.abs() * magnitude + f(Factor::DotMean).abs()),
                    }
                }
                Quantizer::Fp8(f8) => {
                    // `Σ q_i s_i fp8(c_i)` from the format's f64 decoding.
                    let row = &codes.bytes[r * DIM..(r + 1) * DIM];
                    let terms: Vec<f64> = (0..DIM)
                        .map(|i| q[i] as f64 * f8.scale[i] as f64 * f8.format.decode(row[i] as u8))
                        .collect();
                    byte_reference(&terms)
                }
                Quantizer::Int4(i4) => {
                    let rb = DIM.div_ceil(2);
                    let row = &codes.bytes[r * rb..(r + 1) * rb];
                    let terms: Vec<f64> = (0..DIM)
                        .map(|i| {
                            let u = ((row[i / 2] as u8) >> (4 * (i % 2))) & 15;
                            q[i] as f64 * i4.step[i] as f64 * u as f64
                        })
                        .collect();
                    byte_reference(&terms)
                }
                Quantizer::Alloc(a) => {
                    // `α·⟨ŷ, Pq⟩` from the grid points the bytes decode to.
                    let bytes = a.row(bytemuck::cast_slice(&codes.bytes), r);
                    let v = a.rotate_query(&q);
                    let alpha = codes.factors[0][r] as f64;
                    let terms: Vec<f64> = a
                        .decode(&bytes)
                        .iter()
                        .zip(&v)
                        .map(|(&y, &w)| alpha * y as f64 * w as f64)
                        .collect();
                    // The query's u8 tables (step `qc.a`) move a sum by at most half a step per
                    // half-byte group: `a.row_bytes()` steps in all.
                    let mut reference = byte_reference(&terms);
                    reference.tol += alpha.abs() * qc.a as f64 * a.row_bytes() as f64;
                    reference
                }
                other => panic!("no reference for {}", other.kind()),
            }
        })
        .collect()
}

/// The reference of a byte code: the sum of its terms, within the float dot's rounding.
fn byte_reference(terms: &[f64]) -> Reference {
    Reference {
        key: terms.iter().sum(),
        tol: 4.0 * DIM as f64 * f32::EPSILON as f64 * terms.iter().map(|t| t.abs()).sum::<f64>(),
    }
}

/// Checks that `got` (rows, best first) is a top-`k` of `reference`: sorted by key and with no
/// row left out that scores clearly above a row taken, "clearly" meaning beyond both rows' rounding
/// tolerances. Exact integer keys (tolerance 0) must also break ties by the lower row, as the scan
/// promises, so for them the whole list is determined.
fn assert_top_k(got: &[u64], reference: &[Reference], k: usize, what: &str) {
    assert_eq!(got.len(), k.min(reference.len()), "{what}: number of hits");
    let taken: std::collections::HashSet<u64> = got.iter().copied().collect();
    assert_eq!(taken.len(), got.len(), "{what}: a row returned twice");
    let at = |row: u64| &reference[row as usize];
    for pair in got.windows(2) {
        let (a, b) = (at(pair[0]), at(pair[1]));
        assert!(
            a.key >= b.key - (a.tol + b.tol),
            "{what}: row {} ({}) ranked above row {} ({})",
            pair[0],
            a.key,
            pair[1],
            b.key
        );
    }
    let weakest = got
        .iter()
        .map(|&row| at(row).key + at(row).tol)
        .fold(f64::INFINITY, f64::min);
    for (row, r) in reference.iter().enumerate() {
        if !taken.contains(&(row as u64)) {
            assert!(
                r.key - r.tol <= weakest,
                "{what}: row {row} ({}) left out though it beats a row taken ({weakest})",
                r.key
            );
        }
    }
    if reference.iter().all(|r| r.tol == 0.0) {
        let mut order: Vec<u64> = (0..reference.len() as u64).collect();
        order.sort_by(|&a, &b| at(b).key.total_cmp(&at(a).key).then(a.cmp(&b)));
        assert_eq!(got, &order[..got.len()], "{what}: exact keys, ties by row");
    }
}

/// The index's stored (normalised) vectors, re-derived from the kept copy.
fn normalised(index: &Index, _q: &[f32], rows: usize) -> Vec<f32> {
    let kept = index.kept_f32().expect("tests keep f32");
    assert_eq!(kept.len(), rows * DIM);
    kept.to_vec()
}

#[test]
fn flat_scan_is_exact_on_codes() {
    let n = 9000; // more than one chunk of 4096 codes, not a multiple of the block size
    let data = clustered(n + 5, DIM, 1);
    let (base, queries) = data.split_at(n * DIM);
    for kind in [
        QuantizerKind::Sign,
        QuantizerKind::Rabitq,
        QuantizerKind::Residual { bits: 2 },
        QuantizerKind::Ternary,
        QuantizerKind::Int4,
        "fp8".parse().expect("a quantizer"),
        "fp8-e5m2".parse().expect("a quantizer"),
        "alloc:40".parse().expect("a quantizer"),
    ] {
        let index = build(base, None, kind, Metric::Cosine, Keep::F32);
        for (qi, q) in queries.chunks_exact(DIM).enumerate() {
            let reference = reference_scores(&index, n, q);
            for threads in [1, 2] {
                let mut got = pool(threads)
                    .install(|| index.search_batch(q, DIM, &raw(25)))
                    .expect("search");
                let got_rows: Vec<u64> = got.remove(0).iter().map(|h| h.id).collect();
                assert_top_k(
                    &got_rows,
                    &reference,
                    25,
                    &format!("{kind} query {qi} threads {threads}"),
                );
            }
        }
    }
}

#[test]
fn batches_equal_single_queries_and_threads_agree() {
    let data = clustered(5000 + 70, DIM, 2);
    let (base, queries) = data.split_at(5000 * DIM);
    for kind in [
        QuantizerKind::Sign,
        QuantizerKind::Rabitq,
        QuantizerKind::Residual { bits: 3 },
        QuantizerKind::Int8,
        QuantizerKind::Ternary,
        QuantizerKind::Int4,
        "fp8".parse().expect("a quantizer"),
    ] {
        let index = build(base, None, kind, Metric::Dot, Keep::F32);
        let params = SearchParams {
            k: 10,
            oversample: 3,
            ..Default::default()
        };
        let batch = pool(2)
            .install(|| index.search_batch(queries, DIM, &params))
            .expect("batch");
        let one: Vec<Vec<Hit>> = pool(1).install(|| {
            queries
                .chunks_exact(DIM)
                .map(|q| {
                    index
                        .search_batch(q, DIM, &params)
                        .expect("single")
                        .remove(0)
                })
                .collect()
        });
        // Each query's rounding is seeded by its position in the batch, so compare batch
        // searches with batch searches for lattice codes and single with single for the rest.
        let batch1 = pool(1)
            .install(|| index.search_batch(queries, DIM, &params))
            .expect("batch");
        assert_eq!(batch, batch1, "{kind}: thread count changed results");
        if matches!(
            kind,
            QuantizerKind::Sign
                | QuantizerKind::Int8
                | QuantizerKind::Int4
                | QuantizerKind::Fp8 { .. }
        ) {
            assert_eq!(batch, one, "{kind}: batch and single searches differ");
        }
    }
}

#[test]
fn rescoring_everything_equals_exact_float_search() {
    let data = clustered(3000 + 20, DIM, 3);
    let (base, queries) = data.split_at(3000 * DIM);
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let index = build(base, None, QuantizerKind::Sign, metric, Keep::F32);
        let prepared = index.prepare_queries(queries, DIM).expect("valid");
        let truth = exact_ids(&index, None, &prepared, 10).expect("exact");
        let all = SearchParams {
            k: 10,
            oversample: 300,
            ..Default::default()
        };
        let hits = index.search_batch(queries, DIM, &all).expect("search");
        assert_eq!(recall(&hits, &truth), 1.0, "{metric}");
        for (h, t) in hits.iter().zip(&truth) {
            assert_eq!(
                h.iter().map(|h| h.id).collect::<Vec<_>>(),
                *t,
                "{metric}: order differs"
            );
        }
        // Scores are the metric's exact values.
        let q = &prepared[..DIM];
        let x = &index.kept_f32().expect("kept")[hits[0][0].id as usize * DIM..][..DIM];
        let want = match metric {
            Metric::L2 => x.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
            _ => x.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(),
        };
        assert!(
            (hits[0][0].score - want).abs() < 1e-4,
            "{metric}: score {} vs {want}",
            hits[0][0].score
        );
    }
}

#[test]
fn rescoring_everything_from_a_quantized_copy_is_exact_on_that_copy() {
    use bitseek_codes::quantizer::{ByteCode, ByteFormat, Fp8Format};
    let n = 1500;
    let data = clustered(n + 6, DIM, 12);
    let (base, queries) = data.split_at(n * DIM);
    for (keep, format) in [
        (Keep::Int8, ByteFormat::Int8),
        (Keep::Fp8, ByteFormat::Fp8(Fp8Format::E4m3)),
        (Keep::Int4, ByteFormat::Int4),
    ] {
        let index = build(base, None, QuantizerKind::Ternary, Metric::Dot, keep);
        // The same fit on the same rows (metric dot: no normalisation) gives the stored copy.
        let copy = ByteCode::fit(format, DIM, base);
        let bytes = copy.encode_bytes(base);
        let rb = copy.row_bytes();
        let params = SearchParams {
            k: 10,
            oversample: n / 10,
            ..Default::default()
        };
        let hits = index.search_batch(queries, DIM, &params).expect("search");
        for (q, hits) in queries.chunks_exact(DIM).zip(&hits) {
            let (w, konst) = copy.weights(q);
            let reference: Vec<Reference> = bytes
                .chunks_exact(rb)
                .map(|row| {
                    let key = copy.dot(&w, konst, row) as f64;
                    Reference {
                        key,
                        tol: 1e-5 * (1.0 + key.abs()),
                    }
                })
                .collect();
            let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
            assert_top_k(&got, &reference, 10, &format!("keep {keep}"));
            for h in hits {
                let want = reference[h.id as usize].key;
                assert!(
                    (h.score as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "keep {keep}: score {} vs {want}",
                    h.score
                );
            }
        }
    }
}

#[test]
fn oversampling_and_bits_raise_recall() {
    let data = clustered(4000 + 50, DIM, 4);
    let (base, queries) = data.split_at(4000 * DIM);
    let recall_of = |kind, keep, oversample, rescore| {
        let index = build(base, None, kind, Metric::Cosine, keep);
        let prepared = index.prepare_queries(queries, DIM).expect("valid");
        let v = Vectors {
            dim: DIM,
            data: base.to_vec(),
            ids: None,
        };
        let truth = exact_ids(&index, Some(&v), &prepared, 10).expect("exact");
        let params = SearchParams {
            k: 10,
            oversample,
            rescore,
            ..Default::default()
        };
        recall(
            &index.search_batch(queries, DIM, &params).expect("search"),
            &truth,
        )
    };
    let sign = recall_of(QuantizerKind::Sign, Keep::None, 1, false);
    let rabitq = recall_of(QuantizerKind::Rabitq, Keep::None, 1, false);
    let res4 = recall_of(QuantizerKind::Residual { bits: 4 }, Keep::None, 1, false);
    let rescored = recall_of(QuantizerKind::Rabitq, Keep::F32, 10, true);
    let int8_rescored = recall_of(QuantizerKind::Rabitq, Keep::Int8, 10, true);
    let ternary = recall_of(QuantizerKind::Ternary, Keep::None, 1, false);
    let fp8_rescored = recall_of(QuantizerKind::Rabitq, Keep::Fp8, 10, true);
    let int4_rescored = recall_of(QuantizerKind::Rabitq, Keep::Int4, 10, true);
    assert!(ternary > rabitq, "ternary {ternary} vs rabitq {rabitq}");
    // On these uniform-per-dimension clusters FP8's relative precision is coarser than int8's
    // uniform steps at the top of each range (0.85 vs 0.92 here), and int4 coarser still (0.69).
    assert!(
        int8_rescored > fp8_rescored && fp8_rescored > int4_rescored && int4_rescored > rabitq,
        "rescored from int8 {int8_rescored}, fp8 {fp8_rescored}, int4 {int4_rescored}"
    );
    assert!(fp8_rescored > 0.8, "fp8 rescored {fp8_rescored}");
    assert!(rabitq > sign, "rabitq {rabitq} vs sign {sign}");
    assert!(res4 > rabitq, "residual4 {res4} vs rabitq {rabitq}");
    assert!(rescored > rabitq && rescored > 0.9, "rescored {rescored}");
    assert!(int8_rescored > 0.9, "int8 rescored {int8_rescored}");
}

#[test]
fn hamming_search_is_invariant_under_reflections() {
    // Reflecting dimensions of data and queries through the mean flips the same bits of every code
    // (an XOR mask), so sign-code distances, and hence results, must not change.
    let data = clustered(2000 + 10, DIM, 5);
    let (base, queries) = data.split_at(2000 * DIM);
    let index = build(base, None, QuantizerKind::Sign, Metric::Dot, Keep::None);
    let Quantizer::Sign(sign) = index.quantizer() else {
        unreachable!()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let flip: Vec<bool> = (0..DIM).map(|_| rng.gen_bool(0.5)).collect();
    let reflect = |rows: &[f32]| -> Vec<f32> {
        rows.chunks_exact(DIM)
            .flat_map(|x| {
                (0..DIM)
                    .map(|i| {
                        if flip[i] {
                            2.0 * sign.mean[i] - x[i]
                        } else {
                            x[i]
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mirrored = build(
        &reflect(base),
        None,
        QuantizerKind::Sign,
        Metric::Dot,
        Keep::None,
    );
    let a = index.search_batch(queries, DIM, &raw(20)).expect("search");
    let b = mirrored
        .search_batch(&reflect(queries), DIM, &raw(20))
        .expect("search");
    assert_eq!(a, b);
}

#[test]
fn duplicates_tie_by_lower_id_and_ids_survive_any_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let one = clustered(1, DIM, 8);
    let mut data = Vec::new();
    for _ in 0..50 {
        data.extend_from_slice(&one);
    }
    data.extend(clustered(500, DIM, 9));
    let n = data.len() / DIM;
    let mut ids: Vec<u64> = (0..n as u64).map(|i| i * 7 + 1000).collect();
    // Shuffle ids so rows are not in id order: the index sorts them.
    for i in (1..n).rev() {
        ids.swap(i, rng.gen_range(0..=i));
    }
    let mut dup_ids: Vec<u64> = ids[..50].to_vec();
    dup_ids.sort();
    for kind in [
        QuantizerKind::Sign,
        QuantizerKind::Rabitq,
        QuantizerKind::Int8,
    ] {
        let index = build(&data, Some(ids.clone()), kind, Metric::Cosine, Keep::F32);
        for threads in [1, 2] {
            let hits = pool(threads)
                .install(|| {
                    index.search_batch(
                        &one,
                        DIM,
                        &SearchParams {
                            k: 5,
                            oversample: 2,
                            ..Default::default()
                        },
                    )
                })
                .expect("search");
            let got: Vec<u64> = hits[0].iter().map(|h| h.id).collect();
            assert_eq!(
                got,
                dup_ids[..5],
                "{kind}: equal vectors must come back by increasing id"
            );
        }
    }
}

#[test]
fn saved_index_answers_like_the_built_one_and_detects_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = clustered(1000 + 5, DIM, 10);
    let (base, queries) = data.split_at(1000 * DIM);
    for (kind, keep) in [
        (QuantizerKind::Sign, Keep::None),
        (QuantizerKind::Rabitq, Keep::F32),
        (QuantizerKind::Residual { bits: 2 }, Keep::Int8),
        (QuantizerKind::Int8, Keep::Int8),
        (QuantizerKind::Ternary, Keep::Fp8),
        (QuantizerKind::Int4, Keep::Int4),
        ("fp8".parse().expect("a quantizer"), Keep::Fp8),
        ("fp8-e5m2".parse().expect("a quantizer"), Keep::Int4),
        (QuantizerKind::Rabitq, Keep::Int4),
        ("alloc:30".parse().expect("a quantizer"), Keep::Int8),
    ] {
        let path = dir.path().join(format!("{kind}-{keep}.bitseek"));
        let built = build(base, None, kind, Metric::L2, keep);
        built.save(&path).expect("save");
        let opened = Index::open(&path).expect("open");
        assert_eq!(opened.meta(), built.meta());
        let params = SearchParams {
            k: 7,
            oversample: 4,
            ..Default::default()
        };
        assert_eq!(
            opened.search_batch(queries, DIM, &params).expect("search"),
            built.search_batch(queries, DIM, &params).expect("search"),
            "{kind}"
        );
        // A flipped byte in the middle of the file is caught by a checksum.
        let mut bytes = std::fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        assert!(
            matches!(Index::open(&path), Err(IndexError::Format(_))),
            "{kind}: corruption not detected"
        );
        std::fs::write(&path, &bytes[..mid]).expect("write");
        let err = Index::open(&path)
            .err()
            .expect("truncated file must not open")
            .to_string();
        assert!(
            err.contains("truncated") || err.contains("Truncated"),
            "{err}"
        );
    }
}

#[test]
fn bad_queries_and_parameters_are_refused() {
    let data = clustered(100, DIM, 11);
    let index = build(
        &data,
        None,
        QuantizerKind::Rabitq,
        Metric::Cosine,
        Keep::F32,
    );
    let q = &data[..DIM];
    let err = |r: Result<Vec<Vec<Hit>>, IndexError>| r.expect_err("must fail").to_string();
    assert!(err(index.search_batch(&q[..DIM - 1], DIM - 1, &raw(5))).contains("dimension 99"));
    let mut nan = q.to_vec();
    nan[3] = f32::NAN;
    assert!(err(index.search_batch(&nan, DIM, &raw(5))).contains("column 3"));
    assert!(err(index.search_batch(&[0.0; DIM], DIM, &raw(5))).contains("zero vector"));
    assert!(err(index.search_batch(q, DIM, &raw(0))).contains("k must be"));
    let huge = SearchParams {
        k: 1 << 16,
        oversample: 1 << 10,
        ..Default::default()
    };
    assert!(err(index.search_batch(q, DIM, &huge)).contains("exceeds the limit"));
    // k larger than the index returns every vector once.
    let all = index.search_batch(q, DIM, &raw(500)).expect("search");
    assert_eq!(all[0].len(), 100);
}

#[test]
fn invalid_vectors_are_refused_before_building() {
    let mut data = clustered(10, DIM, 12);
    data[5 * DIM + 2] = f32::INFINITY;
    let v = Vectors {
        dim: DIM,
        data,
        ids: None,
    };
    let err = Index::build(v, Path::new("v.npy"), &BuildOptions::default(), &|_| {})
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("v.npy") && msg.contains("row 5"), "{msg}");
    let mut zero = clustered(10, DIM, 13);
    zero[DIM..2 * DIM].iter_mut().for_each(|v| *v = 0.0);
    let v = Vectors {
        dim: DIM,
        data: zero,
        ids: None,
    };
    let msg = Index::build(v, Path::new("z.npy"), &BuildOptions::default(), &|_| {})
        .err()
        .expect("fail")
        .to_string();
    assert!(msg.contains("row 1"), "{msg}");
}

#[test]
fn a_file_with_a_quantizer_from_a_newer_bitseek_is_refused_clearly() {
    // Formats are recorded by name in the metadata, so new ones need no new container version:
    // older files keep opening, and a file naming a format this bitseek does not know is refused
    // with the writer's version and the fix.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = clustered(20, DIM, 13);
    let built = build(
        &data,
        None,
        QuantizerKind::Ternary,
        Metric::Cosine,
        Keep::Fp8,
    );
    let path = dir.path().join("ternary.bitseek");
    built.save(&path).expect("save");
    let opened = Index::open(&path).expect("a ternary index with an fp8 copy opens");
    assert_eq!(opened.meta().quantizer, QuantizerKind::Ternary);
    assert_eq!(opened.meta().keep, Keep::Fp8);

    let mut meta = serde_json::to_value(built.meta()).expect("meta");
    meta["quantizer"] = serde_json::json!({"kind": "septenary"});
    meta["written_by"] = serde_json::json!("99.0.0");
    let future = dir.path().join("future.bitseek");
    bitseek_index::format::write_index(&future, &meta, &[]).expect("write");
    let err = Index::open(&future)
        .err()
        .expect("must not open")
        .to_string();
    assert!(
        err.contains("septenary")
            && err.contains("written by bitseek 99.0.0")
            && err.contains("rebuild"),
        "{err}"
    );
}

#[test]
fn alloc_refuses_a_tiny_budget_and_too_few_rows_before_fitting() {
    let opts = |q: &str| BuildOptions {
        quantizer: q.parse().expect("a quantizer"),
        ..Default::default()
    };
    let v = |n| Vectors {
        dim: DIM,
        data: clustered(n, DIM, 14),
        ids: None,
    };
    for (n, q, want) in [
        (500, "alloc:6", "alloc:6 is too small"),
        (20, "alloc:40", "alloc needs at least"),
    ] {
        let err = Index::build(v(n), Path::new("v.npy"), &opts(q), &|_| {})
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    let built = Index::build(v(500), Path::new("v.npy"), &opts("alloc:40"), &|_| {}).expect("fits");
    let alloc = built.meta().allocation.clone().expect("widths recorded");
    assert_eq!(alloc.widths.len(), DIM.div_ceil(32));
    assert!(alloc.bytes <= 40 && built.code_bytes_per_vector() == alloc.bytes);
}

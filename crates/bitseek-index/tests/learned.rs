//! Learned codes in the index (build, scan, save/open) and the encoder file's checks.

use bitseek_codes::quantizer::learned::{Learned, LearnedConfig, Mlp};
use bitseek_codes::quantizer::{Quantizer, QueryMode};
use bitseek_index::encoder::{load_encoder, load_encoder_for, save_encoder, EncoderError};
use bitseek_index::input::Vectors;
use bitseek_index::{BuildOptions, Index, IndexError, Keep, Metric, SearchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const DIM: usize = 40;

fn mlp(input: usize, hidden: usize, output: usize, rng: &mut ChaCha8Rng) -> Mlp {
    let mut w = |n: usize| {
        (0..n)
            .map(|_| rng.gen_range(-0.3f32..0.3))
            .collect::<Vec<f32>>()
    };
    Mlp {
        input,
        hidden,
        output,
        w1: w(hidden * input),
        b1: w(hidden),
        w2: w(output * hidden),
        b2: w(output),
    }
}

fn encoder(bits: usize) -> Learned {
    let mut rng = ChaCha8Rng::seed_from_u64(bits as u64);
    let (m, hidden) = (64, 16);
    let first = mlp(DIM, hidden, m, &mut rng);
    let recon = (1..bits).map(|_| mlp(m, hidden, DIM, &mut rng)).collect();
    let resid = (1..bits).map(|_| mlp(DIM, hidden, m, &mut rng)).collect();
    Learned::new(
        LearnedConfig {
            dim: DIM,
            m,
            bits,
            hidden,
        },
        first,
        recon,
        resid,
    )
    .unwrap()
}

fn vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Brute force over the codes: rows by descending cosine of codes, ties by row.
fn brute(q: &Quantizer, data: &[f32], query: &[f32], mode: QueryMode, k: usize) -> Vec<u64> {
    let codes = q.encode(data);
    let qc = q.encode_query_bits(query, mode, None, 0);
    let blocks = codes.len.div_ceil(8);
    let mut dist = vec![0u32; blocks * 8];
    let mut est = vec![0f32; blocks * 8];
    q.score(&codes.as_ref(), &qc, 0..blocks, &mut dist, &mut est);
    let mut rows: Vec<usize> = (0..codes.len).collect();
    rows.sort_by(|&a, &b| est[b].total_cmp(&est[a]).then(a.cmp(&b)));
    rows.into_iter().take(k).map(|r| r as u64).collect()
}

#[test]
fn learned_index_scans_like_brute_force_and_survives_save_open() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [1, 2, 3] {
        let enc = encoder(bits);
        let data = vectors(203, 1);
        let queries = vectors(5, 2);
        let opts = BuildOptions {
            metric: Metric::Cosine,
            keep: Keep::None,
            ..Default::default()
        };
        let v = Vectors {
            dim: DIM,
            data: data.clone(),
            ids: None,
        };
        let index =
            Index::build_learned(v, Path::new("t.npy"), &opts, enc.clone(), &|_| {}).unwrap();
        assert_eq!(index.meta().quantizer.to_string(), format!("learned{bits}"));
        // 64 code dims × bits + two factors.
        assert_eq!(index.code_bytes_per_vector(), 8 * bits + 8);
        let path = dir.path().join(format!("l{bits}.bitseek"));
        index.save(&path).unwrap();
        let opened = Index::open(&path).unwrap();
        let q = Quantizer::Learned(Box::new(enc));
        let mut normed = data.clone();
        for r in normed.chunks_exact_mut(DIM) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= n);
        }
        for mode in [QueryMode::Symmetric, QueryMode::Asymmetric] {
            let params = SearchParams {
                k: 7,
                rescore: false,
                mode,
                ..Default::default()
            };
            let a = index.search_batch(&queries, DIM, &params).unwrap();
            let b = opened.search_batch(&queries, DIM, &params).unwrap();
            assert_eq!(a, b);
            for (qi, hits) in a.iter().enumerate() {
                let mut qn = queries[qi * DIM..(qi + 1) * DIM].to_vec();
                let n = qn.iter().map(|x| x * x).sum::<f32>().sqrt();
                qn.iter_mut().for_each(|x| *x /= n);
                let want = brute(&q, &normed, &qn, mode, 7);
                let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
                assert_eq!(got, want, "bits {bits} {mode:?} query {qi}");
                assert!(hits
                    .iter()
                    .all(|h| h.score <= 1.0 + 1e-5 && h.score >= -1.0 - 1e-5));
            }
        }
    }
}

#[test]
fn learned_builds_refuse_other_metrics_dims_and_plain_kinds() {
    let enc = encoder(2);
    let v = |dim: usize| Vectors {
        dim,
        data: vec![0.5; dim * 3],
        ids: None,
    };
    let dot = BuildOptions {
        metric: Metric::Dot,
        ..Default::default()
    };
    let e = Index::build_learned(v(DIM), Path::new("x.npy"), &dot, enc.clone(), &|_| {})
        .err()
        .unwrap();
    assert!(e.to_string().contains("--metric cosine"), "{e}");
    let e = Index::build_learned(
        v(DIM + 1),
        Path::new("x.npy"),
        &BuildOptions::default(),
        enc,
        &|_| {},
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("trained for dimension 40"), "{e}");
    let opts = BuildOptions {
        quantizer: "sign".parse().unwrap(),
        ..Default::default()
    };
    let learned_kind = BuildOptions {
        quantizer: bitseek_codes::quantizer::QuantizerKind::Learned { bits: 2 },
        ..opts
    };
    let e = Index::build(v(DIM), Path::new("x.npy"), &learned_kind, &|_| {})
        .err()
        .unwrap();
    assert!(
        matches!(e, IndexError::BadParam(_)) && e.to_string().contains("learned:"),
        "{e}"
    );
}

#[test]
fn encoder_files_round_trip_and_refuse_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.bitseek");
    let enc = encoder(3);
    let training = serde_json::json!({"estimator": "ste"});
    save_encoder(&path, &enc, training.clone()).unwrap();
    let (back, meta) = load_encoder(&path).unwrap();
    assert_eq!(back, enc);
    assert_eq!(meta.training, training);

    let e = load_encoder_for(&path, DIM + 2).unwrap_err();
    assert!(
        matches!(e, EncoderError::DimensionMismatch { expected: DIM, found, .. } if found == DIM + 2)
    );
    assert!(e.to_string().contains("trained for 40-dimensional"), "{e}");

    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.bitseek");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let e = load_encoder(&cut).unwrap_err().to_string();
    assert!(
        e.contains("truncated") && e.contains("bitseek train"),
        "{e}"
    );
    // One flipped bit in the weights.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 5;
    flipped[at] ^= 1;
    let bad = dir.path().join("flip.bitseek");
    std::fs::write(&bad, &flipped).unwrap();
    assert!(load_encoder(&bad)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    // Not a bitseek file at all.
    let junk = dir.path().join("junk.bitseek");
    std::fs::write(&junk, b"hello, this is not an encoder").unwrap();
    assert!(load_encoder(&junk)
        .unwrap_err()
        .to_string()
        .contains("not a bitseek encoder"));
    // An index is not an encoder.
    let v = Vectors {
        dim: DIM,
        data: vectors(9, 3),
        ids: None,
    };
    let idx = Index::build(v, Path::new("x.npy"), &BuildOptions::default(), &|_| {}).unwrap();
    let ipath = dir.path().join("index.bitseek");
    idx.save(&ipath).unwrap();
    let e = load_encoder(&ipath).unwrap_err();
    assert!(matches!(e, EncoderError::WrongKind { .. }), "{e}");
}

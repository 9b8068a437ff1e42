//! Estimators against their formulas, augmentations' shapes and identities, and small training
//! runs on generated data: training beats its untrained start, compatible training keeps
//! cross-version search working, bad input is refused with a reason.

use bitseek_codes::quantizer::LearnedConfig;
use bitseek_learn::augment::{apply, expand, partners, RacsParams, OPS};
use bitseek_learn::data::{neighbours, read_pairs_npz, write_pairs_npz, Pairs};
use bitseek_learn::estimator::{
    reste_o, reste_surrogate, sign_code, sign_periodic, Estimator, BIPER_OMEGA,
};
use bitseek_learn::loss::{info_nce, LossParams, NearDuplicates};
use bitseek_learn::model::{rotation, rows_tensor, Binarizer};
use bitseek_learn::train::{cross_val_mrr, train, val_mrr, Event, TrainConfig, TrainData};
use bitseek_learn::{Augment, Init, Norm, Objective, ValMetric};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Gradient of `Σ w_i·f(z_i)` through the op, next to central differences of the surrogate.
fn check_gradient(
    op: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    surrogate: impl Fn(f32) -> f32,
    zs: &[f32],
) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w: Vec<f32> = zs.iter().map(|_| rng.gen_range(-2.0f32..2.0)).collect();
    let z = Var::from_tensor(&Tensor::new(zs, &Device::Cpu).unwrap()).unwrap();
    let wt = Tensor::new(w.as_slice(), &Device::Cpu).unwrap();
    let y = op(z.as_tensor()).unwrap();
    // Forward is the exact sign of the op's argument.
    for (v, &zi) in y.to_vec1::<f32>().unwrap().iter().zip(zs) {
        assert!(v.abs() == 1.0, "forward {v} at {zi} is not ±1");
    }
    let grads = (y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
    let g = grads.get(z.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    let h = 1e-3f32;
    for ((&zi, &wi), &gi) in zs.iter().zip(&w).zip(&g) {
        let fd = wi * (surrogate(zi + h) - surrogate(zi - h)) / (2.0 * h);
        assert!(
            (gi - fd).abs() < 2e-2 * (1.0 + fd.abs()),
            "z {zi}: backward {gi}, finite difference {fd}"
        );
    }
}

#[test]
fn estimator_gradients_match_their_formulas() {
    // Away from the kinks at |z| = 0.1 (ReSTE), 1 (STE) and 1.5 (ReSTE).
    let zs = [
        -2.0, -1.3, -0.7, -0.3, -0.05, 0.04, 0.2, 0.55, 0.9, 1.2, 1.7, 3.0,
    ];
    check_gradient(
        |z| sign_code(z, Estimator::Ste, 1.0),
        |z| z.clamp(-1.0, 1.0),
        &zs,
    );
    for o in [1.0, 2.0, 3.0] {
        check_gradient(
            |z| sign_code(z, Estimator::Reste, o),
            |z| reste_surrogate(z, o),
            &zs,
        );
    }
    // BiPer on weights: forward sign(sin(ω₀ w)), gradient of sin(ω₀ w); away from its zeros.
    let ws = [-0.11, -0.06, -0.02, 0.013, 0.05, 0.09, 0.14];
    check_gradient(sign_periodic, |w| (BIPER_OMEGA * w).sin(), &ws);
    // o ramps 1 → 3 on a cosine schedule.
    assert_eq!(reste_o(0.0), 1.0);
    assert!((reste_o(1.0) - 3.0).abs() < 1e-6);
    assert!(reste_o(0.3) < reste_o(0.6));
}

#[test]
fn augmentations_keep_shapes_and_are_identities_when_neutral() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, dim) = (9, 6);
    let q: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let d: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    for op in OPS {
        let (aq, ad) = apply(op, &RacsParams::neutral(), &q, &d, dim, &mut rng);
        assert_eq!(
            (aq.as_slice(), ad.as_slice()),
            (q.as_slice(), d.as_slice()),
            "{op:?}"
        );
        let (aq, ad) = apply(op, &RacsParams::default(), &q, &d, dim, &mut rng);
        assert_eq!((aq.len(), ad.len()), (q.len(), d.len()));
        assert_ne!(aq, q, "{op:?} changed nothing at its default strength");
    }
    let p = partners(n, &mut rng);
    assert!(p.iter().enumerate().all(|(i, &j)| i != j));
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
    let ids: Vec<u64> = (0..n as u64).collect();
    let (eq, ed, groups) = expand(3, &RacsParams::default(), &q, &d, &ids, dim, &mut rng);
    assert_eq!(
        (eq.len(), ed.len(), groups.len()),
        (4 * n * dim, 4 * n * dim, 4 * n)
    );
    assert_eq!(&eq[..n * dim], q.as_slice(), "originals are kept first");
    assert_eq!(groups[2 * n + 4], 4);
}

/// Pairs whose first dims carry loud independent noise and whose other dims carry the signal:
/// sign codes of the raw vectors spend their bits on noise, a learned transform need not.
fn noisy_pairs(n: usize, dim: usize, seed: u64) -> Pairs {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut q, mut d) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let x: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for out in [&mut q, &mut d] {
            for (i, &v) in x.iter().enumerate() {
                let noise = if i < dim / 2 { 1.5 } else { 0.15 };
                let signal = if i < dim / 2 { 0.0 } else { v };
                out.push(signal + noise * rng.gen_range(-1.0f32..1.0));
            }
        }
    }
    Pairs::new(dim, q, d).unwrap()
}

fn tiny(bits: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        m: 32,
        bits,
        hidden: 48,
        epochs: 6,
        batch: 128,
        lr: 3e-3,
        patience: 6,
        seed,
        ..Default::default()
    }
}

#[test]
fn training_improves_retrieval_over_the_untrained_start() {
    let data = TrainData::Pairs(noisy_pairs(1536, 32, 1));
    let val = noisy_pairs(400, 32, 2);
    // Augmentation gains less here: on 32 dims, half of them noise, its copies are much noisier
    // positives than on real embeddings.
    for (estimator, augment, margin) in [
        (Estimator::Ste, Augment::None, 0.3),
        (Estimator::Reste, Augment::None, 0.3),
        (Estimator::Ste, Augment::Racs { copies: 1 }, 0.01),
    ] {
        let cfg = TrainConfig {
            estimator,
            augment,
            ..tiny(2, 3)
        };
        let t = train(&data, &val, &cfg, None, &mut |_| {}).unwrap();
        let after = val_mrr(&t.encoder, &val, usize::MAX);
        assert!(
            after > t.start_val_mrr + margin,
            "{estimator} {augment}: validation MRR {:.3} → {after:.3}",
            t.start_val_mrr
        );
    }
    let cfg = TrainConfig {
        estimator: Estimator::Biper,
        lr: 1e-2,
        ..tiny(2, 3)
    };
    let t = train(&data, &val, &cfg, None, &mut |_| {}).unwrap();
    assert!(
        t.best_val_mrr > t.start_val_mrr,
        "biper did not improve: {:.3} → {:.3}",
        t.start_val_mrr,
        t.best_val_mrr
    );
}

#[test]
fn compatible_training_keeps_cross_version_search() {
    // As in BCT: the old version learned from less data (a sixth of the pairs, one epoch); the new
    // one, trained on all of them against the frozen old encoder, must search the old documents
    // better than the old version searches them itself.
    let data = TrainData::Pairs(noisy_pairs(1536, 32, 4));
    let few = TrainData::Pairs(noisy_pairs(256, 32, 6));
    let val = noisy_pairs(400, 32, 5);
    let old_cfg = TrainConfig {
        epochs: 1,
        ..tiny(2, 10)
    };
    let old = train(&few, &val, &old_cfg, None, &mut |_| {})
        .unwrap()
        .encoder;
    let indep = train(&data, &val, &tiny(2, 11), None, &mut |_| {})
        .unwrap()
        .encoder;
    let compat = train(&data, &val, &tiny(2, 11), Some(&old), &mut |_| {})
        .unwrap()
        .encoder;
    let old_alone = val_mrr(&old, &val, usize::MAX);
    let cross_indep = cross_val_mrr(&indep, &old, &val, usize::MAX);
    let cross_compat = cross_val_mrr(&compat, &old, &val, usize::MAX);
    eprintln!("old {old_alone:.3}, independent new→old {cross_indep:.3}, compatible new→old {cross_compat:.3}");
    assert!(
        cross_compat > cross_indep + 0.03,
        "new→old MRR: compatible {cross_compat:.3}, independent {cross_indep:.3}"
    );
    assert!(
        cross_compat > old_alone,
        "new→old MRR {cross_compat:.3} against the old version's own {old_alone:.3}"
    );
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let e = Pairs::new(4, vec![1.0; 12], vec![1.0; 8]).unwrap_err();
    assert!(e.contains("3 queries but 2 documents"), "{e}");
    assert!(Pairs::new(2, vec![0.0, 0.0], vec![1.0, 0.0])
        .unwrap_err()
        .contains("zero vector"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.npz");
    write_pairs_npz(&path, &[1.0, 0.0, 0.0, 1.0], &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
    let p = read_pairs_npz(&path).unwrap();
    assert_eq!((p.len(), p.dim), (2, 2));
    let junk = dir.path().join("junk.npz");
    std::fs::write(&junk, b"not a zip").unwrap();
    assert!(read_pairs_npz(&junk)
        .unwrap_err()
        .to_string()
        .contains("not a .npz"));

    let data = TrainData::Pairs(noisy_pairs(64, 32, 1));
    let val = noisy_pairs(16, 32, 2);
    let old = train(
        &data,
        &val,
        &TrainConfig {
            epochs: 1,
            ..tiny(2, 1)
        },
        None,
        &mut |_| {},
    )
    .unwrap()
    .encoder;
    let other = TrainConfig {
        bits: 1,
        ..tiny(1, 1)
    };
    let e = train(&data, &val, &other, Some(&old), &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--dims 32 --bits 2"), "{e}");
    let wrong_dim = noisy_pairs(16, 16, 3);
    let e = train(&data, &wrong_dim, &tiny(2, 1), None, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("dimension 16"), "{e}");
    for t in [0.0, -0.5, f32::NAN] {
        let cfg = TrainConfig {
            near_duplicate: t,
            ..tiny(2, 1)
        };
        let e = train(&data, &val, &cfg, None, &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--near-duplicate"), "{e}");
    }
}

#[test]
fn ksh_codes_retrieve_far_better_than_chance() {
    use bitseek_codes::quantizer::{Quantizer, Sign};
    use bitseek_index::retrieval;
    use bitseek_learn::ksh::{Ksh, KshParams};
    let train_pairs = noisy_pairs(1000, 32, 7);
    let val = noisy_pairs(300, 32, 8);
    let params = KshParams {
        bits: 64,
        anchors: 64,
        samples: 600,
        ..Default::default()
    };
    let ksh = Ksh::train(&train_pairs, &params);
    let codes = ksh.encode(&val.doc);
    let queries: Vec<_> = val
        .query
        .chunks_exact(32)
        .map(|q| ksh.encode_query(q))
        .collect();
    let n = val.len();
    let mut scores = vec![0f32; n * n];
    let scorer = Quantizer::Sign(Sign::from_mean(vec![0.0; 64]));
    retrieval::code_scores(&scorer, &codes.as_ref(), &queries, &mut scores);
    let ranks: Vec<usize> = scores
        .chunks(n)
        .enumerate()
        .map(|(i, row)| retrieval::rank_of(row, i))
        .collect();
    let mrr = retrieval::metrics(&ranks, None).mrr;
    // Chance is about ln(300)/300 ≈ 0.02.
    assert!(mrr > 0.15, "KSH MRR {mrr:.3}");
}

#[test]
fn exported_encoder_gives_the_training_models_codes() {
    // After a few training-mode passes (so the batch-norm running statistics have moved), the
    // plain-Rust encoder must give exactly the codes of the candle model in evaluation mode.
    let val = noisy_pairs(64, 32, 22);
    for norm in [Norm::Batch, Norm::None] {
        for bits in [1, 3] {
            let cfg = tiny(bits, 5);
            let config = LearnedConfig {
                dim: 32,
                m: cfg.m,
                bits,
                hidden: cfg.hidden,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut model = Binarizer::new(config, Estimator::Ste, norm, &mut rng).unwrap();
            let x = rows_tensor(&val.query, 32).unwrap();
            // Training-mode passes update the running statistics.
            for _ in 0..3 {
                model.forward(&x, true, 1.0).unwrap();
            }
            let codes = model
                .forward(&x, false, 1.0)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let enc = model.export().unwrap();
            let f = enc.forward(&val.query);
            let scale = 2f32.powi(2 - bits as i32);
            let mut mismatched = 0;
            for (row, u) in codes.iter().zip(f.u.chunks_exact(cfg.m)) {
                for (&c, &u) in row.iter().zip(u) {
                    let lattice = scale * (u as f32 - enc.offset());
                    if (c - lattice).abs() > 1e-5 {
                        mismatched += 1;
                    }
                }
            }
            // A pre-activation within float rounding of 0 may flip; nothing more.
            assert!(
                mismatched <= 2,
                "{norm} {bits}-bit: {mismatched} of {} code values differ",
                64 * cfg.m
            );
        }
    }
}

#[test]
fn near_duplicates_are_never_negatives() {
    let dim = 8;
    // Pairs 0 and 1 share their query (one docstring on two functions); 2 and 3 are unrelated.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut unit = || {
        let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let shared = unit();
    let q = [shared.clone(), shared, unit(), unit()].concat();
    let d = [unit(), unit(), unit(), unit()].concat();
    let ids = [10u64, 11, 12, 13];
    let near = NearDuplicates::find(&q, &d, &ids, dim, 0.95);
    assert_eq!(near.count(), 1, "only pairs 0 and 1 are near-duplicates");
    assert_eq!(NearDuplicates::find(&q, &d, &ids, dim, 1.0).count(), 0);
    // In neighbors mode a vector is another row's positive: pair 3's query is pair 2's document.
    let mut q3 = q.clone();
    q3[3 * dim..].copy_from_slice(&d[2 * dim..3 * dim]);
    assert_eq!(NearDuplicates::find(&q3, &d, &ids, dim, 0.95).count(), 2);
    // Codes where query 0 is as close to document 1 as to its own: unmasked, document 1 is
    // query 0's hardest negative; masked, it is not a negative at all, so the loss drops.
    let codes = |v: &[f32]| Tensor::from_slice(v, (4, dim), &Device::Cpu).unwrap();
    let cd = codes(&d);
    let mut qc = q.clone();
    for i in 0..dim {
        qc[i] = d[i] + d[dim + i];
        qc[dim + i] = d[i] + d[dim + i];
    }
    let cq = codes(&qc);
    let p = LossParams {
        temperature: 0.05,
        hard_negatives: 1,
    };
    let none = NearDuplicates::default();
    let plain = info_nce(&cq, &cd, &ids, &none, &p)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let masked = info_nce(&cq, &cd, &ids, &near, &p)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(masked < plain - 0.1, "masked {masked} vs plain {plain}");
}

#[test]
fn validation_between_epochs_keeps_the_best_check() {
    let data = TrainData::Pairs(noisy_pairs(1024, 32, 31));
    let val = noisy_pairs(200, 32, 32);
    let cfg = TrainConfig {
        val_every: 3,
        epochs: 2,
        patience: 100,
        ..tiny(2, 4)
    };
    let mut seen = Vec::new();
    let t = train(&data, &val, &cfg, None, &mut |e| match e {
        Event::Check(c) => seen.push((c.step, c.val_mrr)),
        Event::Epoch(e) => seen.push((usize::MAX, e.val_mrr)),
        Event::Step { .. } => {}
    })
    .unwrap();
    // 8 steps per epoch: checks after steps 3 and 6, then the epoch end (8); 9, 12, 15, then 16.
    let steps: Vec<usize> = t.checks.iter().map(|c| c.step).collect();
    assert_eq!(steps, vec![3, 6, 8, 9, 12, 15, 16]);
    assert_eq!(seen.len(), 7);
    let best = t
        .checks
        .iter()
        .map(|c| c.val_mrr)
        .fold(t.start_val_mrr, f64::max);
    assert_eq!(t.best_val_mrr, best);
    assert!((val_mrr(&t.encoder, &val, usize::MAX) - best).abs() < 1e-12);
    if best > t.start_val_mrr {
        assert!(t
            .checks
            .iter()
            .any(|c| c.step == t.best_step && c.val_mrr == best));
    }
}

#[test]
fn neighbours_are_the_exact_top_k_and_hold_only_k_ids() {
    let (n, dim, k) = (300, 16, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let data: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let got = neighbours(&data, dim, k);
    let dot = |a: usize, b: usize| -> f32 {
        (0..dim)
            .map(|i| data[a * dim + i] * data[b * dim + i])
            .sum()
    };
    for (i, list) in got.iter().enumerate() {
        // Each list is its own k-long allocation (not an n-long candidate list cut short).
        assert_eq!(list.len(), k);
        assert!(
            list.capacity() <= k,
            "row {i} keeps capacity {}",
            list.capacity()
        );
        let mut want: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        want.sort_by(|&a, &b| dot(i, b).total_cmp(&dot(i, a)));
        let kth = dot(i, want[k - 1]);
        for &j in list {
            assert_ne!(j as usize, i, "a vector is not its own neighbour");
            assert!(
                dot(i, j as usize) >= kth - 1e-5,
                "row {i}: {j} is not in the top {k}"
            );
        }
    }
}

#[test]
fn a_bad_npz_member_is_named_without_unpacking_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    // A float64 array: numpy's default, which the reader refuses with the fix.
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16 + 1).to_le_bytes());
    npy.extend(header.as_bytes());
    npy.push(b'\n');
    npy.extend([0u8; 16]);
    for name in ["query.npy", "doc.npy"] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&npy).unwrap();
    }
    zip.finish().unwrap();
    let e = read_pairs_npz(&path).unwrap_err().to_string();
    assert!(e.contains("array `query`"), "{e}");
    assert!(
        e.contains("query.npy: unsupported dtype '<f8' (float64)"),
        "{e}"
    );
}

/// Unit rows: a few shared directions plus noise (neighbours exist, sign codes are imperfect).
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..8 * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.gen_range(0..8);
        let mut v: Vec<f32> = (0..dim)
            .map(|i| {
                centres[c * dim + i] * (1.0 + i as f32 / dim as f32) + rng.gen_range(-0.6f32..0.6)
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        out.extend(v);
    }
    out
}

fn config(dim: usize, m: usize, bits: usize, hidden: usize) -> LearnedConfig {
    LearnedConfig {
        dim,
        m,
        bits,
        hidden,
    }
}

/// The exported encoder's code values `wᵢ·2^(2−B)(Uᵢ − c)` for `rows`.
fn exported_values(enc: &bitseek_codes::quantizer::Learned, rows: &[f32]) -> Vec<f32> {
    let f = enc.forward(rows);
    let (m, bits) = (enc.config.m, enc.config.bits);
    let step = 2f32.powi(2 - bits as i32);
    f.u.iter()
        .enumerate()
        .map(|(k, &u)| {
            let w = enc.scales.get(k % m).copied().unwrap_or(1.0);
            w * step * (u as f32 - enc.offset())
        })
        .collect()
}

#[test]
fn rotation_start_is_the_sign_of_the_rotation_and_exports_exactly() {
    let (dim, m) = (16, 24);
    let rows = clustered(300, dim, 4);
    for bits in [1, 2] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cfg = config(dim, m, bits, 2 * dim + 8);
        let mut model = Binarizer::with_init(
            cfg,
            Estimator::Ste,
            Norm::None,
            Init::Rotation,
            &rows,
            7,
            &mut rng,
        )
        .unwrap();
        let enc = model.export().unwrap();
        // Plane 0 is sign(P·x).
        let p = rotation(dim, m, 7);
        let u = enc.forward(&rows).u;
        let mut checked = 0;
        for (r, x) in rows.chunks_exact(dim).enumerate() {
            for i in 0..m {
                let z: f32 = (0..dim).map(|j| p[i * dim + j] * x[j]).sum();
                if z.abs() > 1e-5 {
                    assert_eq!(u[r * m + i] >> (bits - 1) == 1, z >= 0.0, "row {r} dim {i}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 300 * m * 9 / 10);
        // The candle model and the exported plain-Rust encoder agree on codes and relaxation.
        let (codes, relaxed) = model
            .forward_relaxed(&rows_tensor(&rows, dim).unwrap(), false, 1.0)
            .unwrap();
        let codes = codes.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let relaxed = relaxed.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = exported_values(&enc, &rows);
        let differ = codes
            .iter()
            .zip(&want)
            .filter(|(a, b)| (*a - *b).abs() > 1e-5)
            .count();
        assert!(
            differ * 1000 <= codes.len(),
            "{bits}-bit: {differ} code values differ"
        );
        let rel = enc.forward(&rows).relaxed;
        let worst = relaxed
            .iter()
            .zip(&rel)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3 || differ > 0, "relaxation differs by {worst}");
    }
    // Too narrow a hidden layer for the exact linear start is refused with the fix.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let err = Binarizer::with_init(
        config(dim, m, 1, dim),
        Estimator::Ste,
        Norm::None,
        Init::Rotation,
        &rows,
        7,
        &mut rng,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("--hidden 32"), "{err}");
}

#[test]
fn label_free_distillation_improves_on_the_rotation_start() {
    let dim = 32;
    let all = clustered(1800, dim, 9);
    let (train_rows, val_rows) = all.split_at(1200 * dim);
    let nbrs = neighbours(train_rows, dim, 10);
    let data = TrainData::Neighbors {
        dim,
        data: train_rows.to_vec(),
        neighbours: nbrs,
    };
    let half = val_rows.len() / 2;
    let val = Pairs::new(dim, val_rows[..half].to_vec(), val_rows[half..].to_vec()).unwrap();
    let cfg = TrainConfig {
        m: 32,
        bits: 1,
        hidden: 64,
        epochs: 6,
        batch: 200,
        lr: 1e-3,
        patience: 6,
        init: Init::Rotation,
        objective: Objective::Distill,
        val_metric: ValMetric::Recall,
        ..Default::default()
    };
    let t = train(&data, &val, &cfg, None, &mut |_| {}).unwrap();
    let first = t.epochs.first().unwrap().loss;
    let last = t.epochs.last().unwrap().loss;
    assert!(last < first, "distillation loss {first:.4} → {last:.4}");
    assert!(
        t.best_val_mrr > t.start_val_mrr,
        "validation recall@10 {:.4} → {:.4}",
        t.start_val_mrr,
        t.best_val_mrr
    );
    // With learned scales and the low-rank mimicking term, training runs, the scales move, and
    // the exported encoder's codes equal the candle model's (scaled) codes.
    let cfg = TrainConfig {
        bits: 2,
        epochs: 2,
        scales: true,
        mimic: 8,
        ..cfg
    };
    let t = train(&data, &val, &cfg, None, &mut |_| {}).unwrap();
    assert!(t.epochs.iter().all(|e| e.loss.is_finite()));
    let enc = t.encoder;
    let values = exported_values(&enc, val_rows);
    let q = bitseek_codes::quantizer::Quantizer::Learned(Box::new(enc.clone()));
    let codes = q.encode(val_rows);
    // Stored factor = 1 / ‖w ⊙ (U − c)‖ of the exported values.
    let step = 2f32.powi(2 - 2);
    for (r, v) in values.chunks_exact(32).enumerate() {
        let norm = v.iter().map(|x| (x / step).powi(2)).sum::<f32>().sqrt();
        assert!((codes.factors[0][r] * norm - 1.0).abs() < 1e-4);
    }
}

#[test]
fn encoder_files_keep_their_scales_and_old_files_load_without() {
    let dim = 16;
    let rows = clustered(64, dim, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut model = Binarizer::with_init(
        config(dim, 20, 2, 40),
        Estimator::Ste,
        Norm::None,
        Init::Rotation,
        &rows,
        1,
        &mut rng,
    )
    .unwrap();
    let plain = model.export().unwrap();
    model.learn_scales().unwrap();
    let scaled = model
        .export()
        .unwrap()
        .with_scales((0..20).map(|i| 0.5 + i as f32 / 10.0).collect())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for enc in [plain, scaled] {
        let path = dir.path().join("enc.bitseek");
        bitseek_index::encoder::save_encoder(&path, &enc, serde_json::json!({})).unwrap();
        let (back, _) = bitseek_index::encoder::load_encoder(&path).unwrap();
        assert_eq!(back, enc);
    }
}

/// Learned plane weights: the candle model's codes `Σ_k β_k sₖ` (and relaxation) equal what the
/// exported encoder computes from its bits and the same `β`, the exported encoder carries them,
/// and encoder files keep them.
#[test]
fn plane_weights_export_exactly_and_survive_files() {
    let (dim, m) = (16, 24);
    let rows = clustered(200, dim, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut model = Binarizer::with_init(
        config(dim, m, 3, 2 * dim + 8),
        Estimator::Ste,
        Norm::None,
        Init::Rotation,
        &rows,
        3,
        &mut rng,
    )
    .unwrap();
    model.learn_plane_scales().unwrap();
    let beta = [0.9f32, 0.3, 0.2];
    model
        .plane_scales
        .as_ref()
        .unwrap()
        .set(&Tensor::new(&beta[..], &Device::Cpu).unwrap())
        .unwrap();
    let x = rows_tensor(&rows, dim).unwrap();
    let (codes, relaxed) = model.forward_relaxed(&x, false, 1.0).unwrap();
    let codes: Vec<f32> = codes.flatten_all().unwrap().to_vec1().unwrap();
    let relaxed: Vec<f32> = relaxed.flatten_all().unwrap().to_vec1().unwrap();
    let enc = model.export().unwrap();
    assert_eq!(enc.plane_scales, beta.to_vec());
    let f = enc.forward(&rows);
    for (k, &u) in f.u.iter().enumerate() {
        // Bit `2 − j` of `u` is step `j`'s sign.
        let want: f32 = (0..3)
            .map(|j| beta[j] * if (u >> (2 - j)) & 1 == 1 { 1.0 } else { -1.0 })
            .sum();
        assert!(
            (codes[k] - want).abs() < 1e-5,
            "value {k}: {} vs {want}",
            codes[k]
        );
        assert!((relaxed[k] - f.relaxed[k]).abs() < 1e-4, "relaxation {k}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("planes.bitseek");
    bitseek_index::encoder::save_encoder(&path, &enc, serde_json::json!({})).unwrap();
    let (back, _) = bitseek_index::encoder::load_encoder(&path).unwrap();
    assert_eq!(back, enc);
}

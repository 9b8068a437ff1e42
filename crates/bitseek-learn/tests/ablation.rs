//! The pieces of the tier-1 ablations (issue 16): RACS operations one at a time (linear
//! interpolation and extrapolation apart), and InfoNCE with mined hard negatives.

use bitseek_learn::augment::{apply, expand, expand_with, parse_ops, Op, RacsParams, OPS};
use bitseek_learn::loss::{info_nce, info_nce_mined, LossParams, NearDuplicates};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn operations_are_named_one_by_one_or_all() {
    assert_eq!(parse_ops("all").unwrap(), OPS.to_vec());
    assert_eq!(
        parse_ops("interpolation,gaussian").unwrap(),
        vec![Op::Interpolate, Op::Gaussian]
    );
    assert_eq!(parse_ops("extrapolation").unwrap(), vec![Op::Extrapolate]);
    let err = parse_ops("binary,mixup").unwrap_err();
    assert!(
        err.contains("\"mixup\"") && err.contains("interpolation"),
        "{err}"
    );
}

#[test]
fn interpolation_stays_between_and_extrapolation_goes_beyond() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let dim = 8;
    // Two rows: each is the other's partner, so a copy of row 0 is λ·h₀ + (1 − λ)·h₁.
    let q: Vec<f32> = (0..2 * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let d: Vec<f32> = (0..2 * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    // The weight t of h₁ − h₀ in the copy: 1 − λ.
    let weight = |out: &[f32], src: &[f32]| -> f32 {
        let (h0, h1, o) = (&src[..dim], &src[dim..], &out[..dim]);
        let num: f32 = (0..dim).map(|k| (o[k] - h0[k]) * (h1[k] - h0[k])).sum();
        let den: f32 = (0..dim).map(|k| (h1[k] - h0[k]).powi(2)).sum();
        num / den
    };
    let p = RacsParams::default();
    let (mut inter, mut extra) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let (aq, ad) = apply(Op::Interpolate, &p, &q, &d, dim, &mut rng);
        let t = weight(&aq, &q);
        // Query and document share λ (the authors' code), so the same weight on both sides.
        assert!((t - weight(&ad, &d)).abs() < 1e-4);
        inter.push(t);
        let (aq, _) = apply(Op::Extrapolate, &p, &q, &d, dim, &mut rng);
        extra.push(weight(&aq, &q));
    }
    assert!(
        inter.iter().all(|&t| (-1e-5..=0.1 + 1e-5).contains(&t)),
        "{inter:?}"
    );
    assert!(
        extra.iter().all(|&t| (-0.1 - 1e-5..=1e-5).contains(&t)),
        "{extra:?}"
    );
    assert!(inter.iter().any(|&t| t > 0.01) && extra.iter().any(|&t| t < -0.01));
}

#[test]
fn one_operation_alone_is_the_only_one_applied_and_all_is_racs() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (n, dim) = (6, 5);
    let q: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let d: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    let p = RacsParams::default();
    // Gaussian scaling alone: every copy is the original times factors near 1 (never a mix of
    // two rows, which would change signs or zero entries).
    let (eq, _, _) = expand_with(&[Op::Gaussian], 3, &p, &q, &d, &ids, dim, &mut rng);
    for copy in eq[n * dim..].chunks(n * dim) {
        for (a, b) in copy.iter().zip(&q) {
            let ratio = a / b;
            assert!((0.4..1.6).contains(&ratio), "{a} from {b}");
        }
    }
    // `expand` is `expand_with` over RACS's four, draw for draw.
    let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
    assert_eq!(
        expand(2, &p, &q, &d, &ids, dim, &mut r1),
        expand_with(&OPS, 2, &p, &q, &d, &ids, dim, &mut r2)
    );
}

fn rows(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let v: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, (n, dim), &Device::Cpu).unwrap()
}

#[test]
fn mined_negatives_add_to_the_loss_only_where_allowed() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n, e, dim) = (6, 4, 8);
    let (a, b) = (rows(n, dim, &mut rng), rows(n, dim, &mut rng));
    let groups: Vec<u64> = (0..n as u64).collect();
    let near = NearDuplicates::default();
    let p = LossParams {
        temperature: 0.1,
        hard_negatives: usize::MAX,
    };
    let plain = info_nce(&a, &b, &groups, &near, &p).unwrap();
    let plain = plain.to_scalar::<f32>().unwrap();
    // Mined documents equal to the queries: the hardest negatives there are.
    let mined = a.narrow(0, 0, e).unwrap();
    let none = vec![false; n * e];
    let masked = info_nce_mined(&a, &b, &groups, &near, &mined, &none, &p).unwrap();
    assert!(
        (masked.to_scalar::<f32>().unwrap() - plain).abs() < 1e-5,
        "nothing allowed must be plain InfoNCE"
    );
    let all = vec![true; n * e];
    let hard = info_nce_mined(&a, &b, &groups, &near, &mined, &all, &p).unwrap();
    assert!(hard.to_scalar::<f32>().unwrap() > plain + 0.1);
    // A row allowed fewer negatives than the others is padded, not given fake ones.
    let mut some = none.clone();
    some[0] = true;
    let one = info_nce_mined(&a, &b, &groups, &near, &mined, &some, &p).unwrap();
    let one = one.to_scalar::<f32>().unwrap();
    assert!(one > plain && one < hard.to_scalar::<f32>().unwrap());
    let err = info_nce_mined(&a, &b, &groups, &near, &mined, &all[1..], &p).unwrap_err();
    assert!(err.to_string().contains("mined-negative flags"), "{err}");
}

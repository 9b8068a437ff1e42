//! End-to-end: `bitseek train` on generated pairs, `bitseek build --quantizer learned:…`, search,
//! and the errors for bad training input and mismatched encoders.

mod common;
use common::{bitseek, describe};

use bitseek_index::input::write_npy_f32;
use bitseek_learn::data::write_pairs_npz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn ok(args: &[&str]) -> String {
    let out = bitseek(args);
    assert!(out.status.success(), "{}", describe(args, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str], needles: &[&str]) {
    let out = bitseek(args);
    let text = describe(args, &out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{text}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{text}");
    }
}

/// Query/document pairs: a shared random vector plus independent noise on each side.
fn pairs(n: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut q, mut d) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let x: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        q.extend(x.iter().map(|v| v + 0.3 * rng.gen_range(-1.0f32..1.0)));
        d.extend(x.iter().map(|v| v + 0.3 * rng.gen_range(-1.0f32..1.0)));
    }
    (q, d)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_build_and_search_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let dim = 32;
    let (q, d) = pairs(600, dim, 1);
    write_pairs_npz(&p("pairs.npz"), &q, &d, dim).unwrap();
    write_npy_f32(&p("docs.npy"), 600, dim, &d).unwrap();
    write_npy_f32(&p("queries.npy"), 600, dim, &q).unwrap();
    let out = ok(&[
        "train",
        "--data",
        s(&p("pairs.npz")),
        "--mode",
        "pairs",
        "--bits",
        "2",
        "--dims",
        "64",
        "--hidden",
        "32",
        "--epochs",
        "2",
        "--batch",
        "128",
        "--estimator",
        "reste",
        "--augment",
        "racs:1",
        "--seed",
        "3",
        "--out",
        s(&p("enc.bitseek")),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["epochs_run"], 2);
    assert_eq!(summary["training_pairs"], 540);
    ok(&[
        "build",
        "--input",
        s(&p("docs.npy")),
        "--quantizer",
        &format!("learned:{}", s(&p("enc.bitseek"))),
        "--out",
        s(&p("idx.bitseek")),
    ]);
    let eval = ok(&[
        "eval",
        s(&p("idx.bitseek")),
        "--queries",
        s(&p("queries.npy")),
        "--json",
    ]);
    assert!(eval.contains("learned2"), "{eval}");
    // Neighbors mode on plain vectors.
    ok(&[
        "train",
        "--data",
        s(&p("docs.npy")),
        "--mode",
        "neighbors",
        "--bits",
        "1",
        "--dims",
        "64",
        // Neighbors mode starts from the rotation lattice: 2 × min(32, 64) hidden units.
        "--hidden",
        "64",
        "--epochs",
        "1",
        "--batch",
        "128",
        "--out",
        s(&p("nb.bitseek")),
    ]);
    // Compatible training needs the old encoder's shape.
    fails(
        &[
            "train",
            "--data",
            s(&p("pairs.npz")),
            "--bits",
            "1",
            "--dims",
            "64",
            "--epochs",
            "1",
            "--compatible-with",
            s(&p("enc.bitseek")),
            "--out",
            s(&p("c.bitseek")),
        ],
        &["--dims 64 --bits 2"],
    );
}

#[test]
fn bad_training_input_and_mismatched_encoders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let (q, d) = pairs(40, 16, 2);
    write_pairs_npz(&p("short.npz"), &q, &d[..30 * 16], 16).unwrap();
    fails(
        &[
            "train",
            "--data",
            s(&p("short.npz")),
            "--out",
            s(&p("e.bitseek")),
        ],
        &["40 queries but 30 documents"],
    );
    write_npy_f32(&p("v16.npy"), 40, 16, &q).unwrap();
    fails(
        &[
            "train",
            "--data",
            s(&p("v16.npy")),
            "--mode",
            "pairs",
            "--out",
            s(&p("e.bitseek")),
        ],
        &["--mode neighbors"],
    );
    write_pairs_npz(&p("ok.npz"), &q, &d, 16).unwrap();
    ok(&[
        "train",
        "--data",
        s(&p("ok.npz")),
        "--dims",
        "64",
        "--hidden",
        "16",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--out",
        s(&p("e16.bitseek")),
    ]);
    // An encoder trained for 16 dimensions cannot encode 20-dimensional vectors.
    let (q20, _) = pairs(10, 20, 3);
    write_npy_f32(&p("v20.npy"), 10, 20, &q20).unwrap();
    fails(
        &[
            "build",
            "--input",
            s(&p("v20.npy")),
            "--quantizer",
            &format!("learned:{}", s(&p("e16.bitseek"))),
            "--out",
            s(&p("i.bitseek")),
        ],
        &["trained for 16-dimensional", "20 dimensions"],
    );
    // An index is not an encoder, and a missing file says so.
    ok(&[
        "build",
        "--input",
        s(&p("v20.npy")),
        "--out",
        s(&p("plain.bitseek")),
    ]);
    fails(
        &[
            "build",
            "--input",
            s(&p("v20.npy")),
            "--quantizer",
            &format!("learned:{}", s(&p("plain.bitseek"))),
            "--out",
            s(&p("i.bitseek")),
        ],
        &["not an encoder"],
    );
    fails(
        &[
            "build",
            "--input",
            s(&p("v20.npy")),
            "--quantizer",
            "learned:",
            "--out",
            s(&p("i.bitseek")),
        ],
        &["learned: needs the encoder file"],
    );
}

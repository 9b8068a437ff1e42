//! Format search and calibration: `--calib` queries reach `alloc`'s allocation (and are refused
//! where nothing is calibrated), and a given encoder's learned codes join `tune`'s table.

use bitseek_codes::quantizer::alloc;
use bitseek_codes::quantizer::learned::{Learned, LearnedConfig, Mlp};
use bitseek_index::encoder::save_encoder;
use bitseek_index::input::Vectors;
use bitseek_index::tune::{tune, TuneOptions};
use bitseek_index::{BuildOptions, Index, Metric, QuantizerChoice};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const DIM: usize = 64;

/// Rows whose variance falls off by dimension, as embeddings' does.
fn vectors(n: usize, seed: u64) -> Vectors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Vectors {
        dim: DIM,
        data: (0..n * DIM)
            .map(|i| rng.gen_range(-1.0f32..1.0) / (1.0 + (i % DIM) as f32 / 8.0) + 0.1)
            .collect(),
        ids: None,
    }
}

fn encoder() -> Learned {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut w = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-0.3f32..0.3)).collect() };
    let (m, hidden) = (64, 16);
    let first = Mlp {
        input: DIM,
        hidden,
        output: m,
        w1: w(hidden * DIM),
        b1: w(hidden),
        w2: w(m * hidden),
        b2: w(m),
    };
    let config = LearnedConfig {
        dim: DIM,
        m,
        bits: 1,
        hidden,
    };
    Learned::new(config, first, vec![], vec![]).unwrap()
}

#[test]
fn calibration_queries_reach_alloc_and_are_refused_elsewhere() {
    let (base, calib) = (vectors(1500, 1), vectors(120, 2));
    let opts = BuildOptions::default();
    let choice: QuantizerChoice = "alloc:24".parse().unwrap();
    let src = Path::new("v.npy");
    let index = Index::build_calibrated(
        base.clone(),
        src,
        &opts,
        &choice,
        None,
        Some(&calib),
        &|_| {},
    )
    .expect("builds");
    let report = index.meta().allocation.clone().expect("widths");
    assert_eq!(report.calib_queries, 120, "{report:?}");
    assert_eq!(report.calib_rows, 1500, "{report:?}");
    let plain = Index::build_with(base.clone(), src, &opts, &choice, None, &|_| {}).unwrap();
    let held = plain.meta().allocation.clone().unwrap();
    assert_eq!(
        held.calib_queries,
        alloc::CALIB_QUERIES,
        "rows held out: {held:?}"
    );
    let rabitq: QuantizerChoice = "rabitq".parse().unwrap();
    let err = Index::build_calibrated(
        base.clone(),
        src,
        &opts,
        &rabitq,
        None,
        Some(&calib),
        &|_| {},
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("--calib") && err.contains("drop --calib"),
        "{err}"
    );
    let wrong = Vectors {
        dim: DIM - 1,
        data: vec![0.5; 3 * (DIM - 1)],
        ids: None,
    };
    let err = Index::build_calibrated(base, src, &opts, &choice, None, Some(&wrong), &|_| {})
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("--calib") && err.contains(&format!("{DIM}")),
        "{err}"
    );
}

#[test]
fn tune_measures_learned_codes_from_a_given_encoder_and_calibrates_alloc() {
    let (base, calib) = (vectors(1500, 4), vectors(100, 5));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.bitseek-encoder");
    save_encoder(&path, &encoder(), serde_json::json!({})).unwrap();
    let opts = TuneOptions {
        budget: 40,
        metric: Metric::Cosine,
        seed: 7,
        k: 10,
        calib: Some(&calib),
        encoder: Some(&path),
    };
    let t = tune(&base, None, Path::new("v.npy"), &opts).expect("tunes");
    let names: Vec<&str> = t.formats.iter().map(|f| f.quantizer.as_str()).collect();
    let learned = t
        .formats
        .iter()
        .find(|f| f.quantizer == "learned1")
        .unwrap_or_else(|| panic!("no learned codes in {names:?}"));
    assert!(
        learned.bytes_per_vector <= 40 && learned.recall_raw > 0.0,
        "{learned:?}"
    );
    assert!(names.contains(&"alloc:40"), "{names:?}");
    // Over the budget the encoder's codes are left out, like any format that does not fit.
    let small = TuneOptions { budget: 12, ..opts };
    let t = tune(&base, None, Path::new("v.npy"), &small).expect("tunes");
    assert!(t
        .formats
        .iter()
        .all(|f| f.quantizer != "learned1" && f.bytes_per_vector <= 12));
    // Learned codes rank by cosine: another metric with an encoder is refused with the fix.
    let dot = TuneOptions {
        metric: Metric::Dot,
        ..opts
    };
    let err = tune(&base, None, Path::new("v.npy"), &dot)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("--metric cosine"), "{err}");
}

#[test]
fn alloc_files_of_the_row_major_layout_are_refused_with_the_rebuild() {
    // Layout 1 (one code after another) predates the FastScan blocks; its files carry no layout.
    let dir = tempfile::tempdir().unwrap();
    let choice: QuantizerChoice = "alloc:24".parse().unwrap();
    let src = Path::new("v.npy");
    let index = Index::build_with(
        vectors(600, 9),
        src,
        &BuildOptions::default(),
        &choice,
        None,
        &|_| {},
    )
    .unwrap();
    let path = dir.path().join("alloc.bitseek");
    index.save(&path).unwrap();
    let reopened = Index::open(&path)
        .unwrap()
        .meta()
        .allocation
        .clone()
        .unwrap();
    let built = index.meta().allocation.clone().unwrap();
    assert_eq!(
        (reopened.widths, reopened.layout),
        (built.widths, alloc::LAYOUT)
    );
    let file = bitseek_index::format::IndexFile::open(&path).unwrap();
    let mut meta = file.meta().clone();
    meta["allocation"].as_object_mut().unwrap().remove("layout");
    let refs: Vec<(&str, &[u8])> = file
        .section_names()
        .map(|n| (n, file.section(n).unwrap()))
        .collect();
    let old = dir.path().join("old.bitseek");
    bitseek_index::format::write_index(&old, &meta, &refs).unwrap();
    let err = Index::open(&old).err().expect("refused").to_string();
    assert!(
        err.contains("layout 1") && err.contains("--quantizer alloc:24"),
        "{err}"
    );
}

//! LoRA adapters merged at load (the `adapter` module): on the tiny random BERT, the merged
//! encoder against a forward pass that applies the adapter on the fly, written here in candle
//! tensor operations; damaged and mismatched adapters refused by name; and, with the real model,
//! parity with the training framework (tests/data/adapter-reference.json, made by
//! scripts/train_adapter.py).

mod common;

use bitseek_embed::{Adapter, BertEmbedder, EmbedOptions, Embedder, Error, ModelDir};
use candle_core::{Device, Tensor, D};
use common::{make_model, HIDDEN, INTERMEDIATE};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// An adapter file's tensors (name, shape, values) and metadata, as written by [`write_adapter`].
type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;
type Meta = Vec<(&'static str, String)>;

const LAYERS: usize = 2;
const HEADS: usize = 2;
const RANK: usize = 3;
const ALPHA: f32 = 6.0;
const TARGETS: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

/// (n_in, n_out) of each target layer of the tiny model.
fn dims(target: &str) -> (usize, usize) {
    match target {
        "intermediate.dense" => (HIDDEN, INTERMEDIATE),
        "output.dense" => (INTERMEDIATE, HIDDEN),
        _ => (HIDDEN, HIDDEN),
    }
}

fn modules() -> Vec<String> {
    (0..LAYERS)
        .flat_map(|l| TARGETS.map(|t| format!("encoder.layer.{l}.{t}")))
        .collect()
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// SHA-256 of the modules' base weights as little-endian f32, as scripts/train_adapter.py does.
fn base_hash(model: &HashMap<String, Tensor>, modules: &[String]) -> String {
    let mut h = Sha256::new();
    for m in modules {
        for v in floats(&model[&format!("{m}.weight")]) {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Random LoRA factors for every target layer: (A [rank, in], B [out, rank]) by module.
fn random_factors() -> HashMap<String, (Tensor, Tensor)> {
    let dev = Device::Cpu;
    modules()
        .into_iter()
        .map(|m| {
            let (n_in, n_out) = dims(
                m.rsplit_once("layer.")
                    .unwrap()
                    .1
                    .split_once('.')
                    .unwrap()
                    .1,
            );
            let a = Tensor::randn(0f32, 0.3, (RANK, n_in), &dev).unwrap();
            let b = Tensor::randn(0f32, 0.3, (n_out, RANK), &dev).unwrap();
            (m, (a, b))
        })
        .collect()
}

/// Writes an adapter file: `tensors` as f32 and `meta` as the header's metadata.
fn write_adapter(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], meta: &[(&str, String)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

/// A well-formed adapter of `factors` for the model whose weights are `model`.
fn adapter_parts(
    model: &HashMap<String, Tensor>,
    factors: &HashMap<String, (Tensor, Tensor)>,
) -> (Tensors, Meta) {
    let modules = modules();
    let mut tensors = Vec::new();
    for m in &modules {
        let (a, b) = &factors[m];
        tensors.push((format!("{m}.lora_A"), a.dims().to_vec(), floats(a)));
        tensors.push((format!("{m}.lora_B"), b.dims().to_vec(), floats(b)));
    }
    let meta = vec![
        ("format", bitseek_embed::ADAPTER_FORMAT.to_string()),
        ("rank", RANK.to_string()),
        ("alpha", ALPHA.to_string()),
        ("modules", modules.join(",")),
        ("base_weights_sha256", base_hash(model, &modules)),
    ];
    (tensors, meta)
}

/// The BERT forward pass with the adapter applied on the fly (`x Wᵀ + b + (alpha/rank) · x Aᵀ Bᵀ`,
/// nothing merged), one text at a time, mean pooled and L2-normalised.
fn unmerged_forward(
    model: &HashMap<String, Tensor>,
    factors: Option<&HashMap<String, (Tensor, Tensor)>>,
    ids: &[u32],
) -> Vec<f32> {
    let dev = Device::Cpu;
    let scale = (ALPHA / RANK as f32) as f64;
    let linear = |x: &Tensor, name: &str| -> Tensor {
        let w = &model[&format!("{name}.weight")];
        let b = &model[&format!("{name}.bias")];
        let mut y = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap();
        if let Some((a, bb)) = factors.and_then(|f| f.get(name)) {
            let delta = x
                .matmul(&a.t().unwrap())
                .unwrap()
                .matmul(&bb.t().unwrap())
                .unwrap();
            y = (y + (delta * scale).unwrap()).unwrap();
        }
        y
    };
    let norm = |x: &Tensor, name: &str| -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let xn = xc
            .broadcast_div(&(var + 1e-12).unwrap().sqrt().unwrap())
            .unwrap();
        xn.broadcast_mul(&model[&format!("{name}.weight")])
            .unwrap()
            .broadcast_add(&model[&format!("{name}.bias")])
            .unwrap()
    };
    let l = ids.len();
    let idx = Tensor::new(ids, &dev).unwrap();
    let word = model["embeddings.word_embeddings.weight"]
        .index_select(&idx, 0)
        .unwrap();
    let pos = model["embeddings.position_embeddings.weight"]
        .narrow(0, 0, l)
        .unwrap();
    let typ = model["embeddings.token_type_embeddings.weight"]
        .narrow(0, 0, 1)
        .unwrap();
    let mut x = norm(
        &(word + pos).unwrap().broadcast_add(&typ).unwrap(),
        "embeddings.LayerNorm",
    );
    let hd = HIDDEN / HEADS;
    let heads = |t: Tensor| {
        t.reshape((l, HEADS, hd))
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    for layer in 0..LAYERS {
        let p = format!("encoder.layer.{layer}");
        let q = heads(linear(&x, &format!("{p}.attention.self.query")));
        let k = heads(linear(&x, &format!("{p}.attention.self.key")));
        let v = heads(linear(&x, &format!("{p}.attention.self.value")));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        let ctx = probs
            .matmul(&v)
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .reshape((l, HIDDEN))
            .unwrap();
        let a = norm(
            &(linear(&ctx, &format!("{p}.attention.output.dense")) + &x).unwrap(),
            &format!("{p}.attention.output.LayerNorm"),
        );
        let mid = linear(&a, &format!("{p}.intermediate.dense"))
            .gelu_erf()
            .unwrap();
        x = norm(
            &(linear(&mid, &format!("{p}.output.dense")) + &a).unwrap(),
            &format!("{p}.output.LayerNorm"),
        );
    }
    let pooled = floats(&x.mean(0).unwrap());
    let n = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
    pooled.iter().map(|v| v / n).collect()
}

const TEXTS: [&str; 5] = [
    "hello world",
    "a b c d e f g h a b c",
    "",
    "fn read files.",
    "x y z",
];

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn merged_adapter_matches_the_unmerged_forward_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let model = make_model(tmp.path(), Some(16));
    let factors = random_factors();
    let (tensors, meta) = adapter_parts(&model, &factors);
    let path = tmp.path().join("adapter.safetensors");
    write_adapter(&path, &tensors, &meta);
    let adapter = Adapter::open(&path).unwrap();
    assert_eq!((adapter.rank(), adapter.alpha()), (RANK, ALPHA));
    assert_eq!(adapter.modules().len(), LAYERS * TARGETS.len());

    let dir = ModelDir::open(tmp.path()).unwrap();
    let base = BertEmbedder::load(&dir).unwrap();
    let merged = BertEmbedder::load_adapted(&dir, EmbedOptions::default(), Some(&adapter)).unwrap();
    let ids = merged.tokenizer().encode(&TEXTS).unwrap();
    let got_base = base.embed(&TEXTS).unwrap();
    let got = merged.embed(&TEXTS).unwrap();
    let mut moved = 0f32;
    for (i, ids) in ids.iter().enumerate() {
        // The reference pass agrees with the packed encoder without an adapter...
        let want_base = unmerged_forward(&model, None, ids);
        assert!(
            max_diff(&got_base[i], &want_base) < 1e-5,
            "text {i} without adapter"
        );
        // ...and with the adapter applied on the fly it agrees with the merged weights.
        let want = unmerged_forward(&model, Some(&factors), ids);
        let d = max_diff(&got[i], &want);
        assert!(
            d < 1e-5,
            "text {i}: merged {:?} vs unmerged {want:?} ({d})",
            got[i]
        );
        moved = moved.max(max_diff(&got[i], &got_base[i]));
    }
    // The adapter is not a no-op, so the comparison above tested the merge.
    assert!(
        moved > 0.05,
        "the adapter moved the embeddings by only {moved}"
    );
}

/// Loads the tiny model with the adapter at `path`; the error it gives.
fn refused(dir: &Path, path: &Path) -> Error {
    let adapter = match Adapter::open(path) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let dir = ModelDir::open(dir).unwrap();
    BertEmbedder::load_adapted(&dir, EmbedOptions::default(), Some(&adapter))
        .expect_err("the adapter should have been refused")
}

#[test]
fn damaged_or_mismatched_adapters_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = make_model(tmp.path(), None);
    let factors = random_factors();
    let (tensors, meta) = adapter_parts(&model, &factors);
    let path = tmp.path().join("adapter.safetensors");
    let check =
        |tensors: &[(String, Vec<usize>, Vec<f32>)], meta: &[(&str, String)], says: &str| {
            write_adapter(&path, tensors, meta);
            let err = refused(tmp.path(), &path);
            let text = err.to_string();
            assert!(matches!(err, Error::Adapter { .. }), "{err:?}");
            assert!(
                text.contains("adapter.safetensors") && text.contains(says),
                "{says}: {text}"
            );
        };
    let with = |key: &str, value: &str| -> Meta {
        meta.iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *k == key {
                        value.to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };

    // Damaged bytes: not a safetensors file, or cut short.
    std::fs::write(&path, b"garbage").unwrap();
    let err = refused(tmp.path(), &path);
    assert!(err.to_string().contains("not an adapter file"), "{err}");
    write_adapter(&path, &tensors, &meta);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 100]).unwrap();
    let err = refused(tmp.path(), &path);
    assert!(
        matches!(err, Error::Adapter { .. }) && err.to_string().contains("not an adapter file"),
        "{err}"
    );

    // Metadata.
    check(&tensors, &with("format", "peft"), "format");
    check(&tensors, &with("rank", "0"), "rank");
    check(&tensors, &with("alpha", "NaN"), "alpha");
    check(
        &tensors,
        &with("base_weights_sha256", "abc"),
        "64 hex digits",
    );
    check(&tensors, &meta[..4], "base_weights_sha256");

    // Tensors: one missing, a wrong rank, a non-finite value, one that belongs to no layer.
    check(
        &tensors[1..],
        &meta,
        "no tensor encoder.layer.0.attention.self.query.lora_A",
    );
    let mut bad = tensors.clone();
    bad[0].1 = vec![RANK + 1, HIDDEN / (RANK + 1) * RANK];
    check(&bad, &meta, "expected");
    let mut bad = tensors.clone();
    bad[3].2[1] = f32::NAN;
    check(&bad, &meta, "non-finite");
    let mut bad = tensors.clone();
    bad.push(("extra.lora_A".into(), vec![1], vec![0.0]));
    check(&bad, &meta, "extra.lora_A");

    // Trained on other base weights: same shapes, other values.
    let other = tempfile::tempdir().unwrap();
    let other_model = make_model(other.path(), None);
    let (_, other_meta) = adapter_parts(&other_model, &factors);
    check(&tensors, &other_meta, "base weights hash to");

    // Shapes that do not fit the model: a wider layer (the hash is then over no such weights).
    let mut wide = tensors.clone();
    wide[0] = (
        wide[0].0.clone(),
        vec![RANK, HIDDEN + 1],
        vec![0.1; RANK * (HIDDEN + 1)],
    );
    check(&wide, &meta, "does not fit");

    // A layer that is not one of the encoder's dense layers (its hash is right, so only the
    // count catches it).
    let mut odd = tensors.clone();
    let name = "embeddings.token_type_embeddings";
    odd.push((
        format!("{name}.lora_A"),
        vec![RANK, HIDDEN],
        vec![0.1; RANK * HIDDEN],
    ));
    odd.push((format!("{name}.lora_B"), vec![2, RANK], vec![0.1; 2 * RANK]));
    let mut mods = modules();
    mods.push(name.to_string());
    let mut odd_meta = with("modules", &mods.join(","));
    odd_meta[4].1 = base_hash(&model, &mods);
    check(&odd, &odd_meta, "dense layers");

    // And the well-formed one loads.
    write_adapter(&path, &tensors, &meta);
    let adapter = Adapter::open(&path).unwrap();
    BertEmbedder::load_adapted(
        &ModelDir::open(tmp.path()).unwrap(),
        EmbedOptions::default(),
        Some(&adapter),
    )
    .unwrap();
}

#[derive(serde::Deserialize)]
struct Reference {
    adapter_sha256: String,
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    text: String,
    vector: Vec<f32>,
}

/// The adapter the reference was made with.
const ADAPTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/adapters/minilm-code-lora.safetensors"
);

/// bitseek's merged encoder against the training framework's forward pass (torch, adapter
/// unmerged) on the real model: cosine ≥ 0.999 for every text.
#[test]
#[ignore = "needs the model: run `bitseek model fetch`"]
fn merged_adapter_matches_the_training_framework() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/adapter-reference.json"
    );
    let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        bitseek_embed::fetch::sha256_file(Path::new(ADAPTER)).unwrap(),
        reference.adapter_sha256,
        "the reference was made with another adapter: rerun scripts/train_adapter.py"
    );
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(None).unwrap()).unwrap();
    let adapter = Adapter::open(ADAPTER).unwrap();
    let base = BertEmbedder::load(&dir).unwrap();
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    for batch_size in [4, 64] {
        let options = EmbedOptions {
            batch_size,
            ..EmbedOptions::default()
        };
        let e = BertEmbedder::load_adapted(&dir, options, Some(&adapter)).unwrap();
        let got = e.embed(&texts).unwrap();
        let plain = base.embed(&texts).unwrap();
        let (mut worst, mut moved) = (f32::INFINITY, 0f32);
        for (i, item) in reference.items.iter().enumerate() {
            let cos: f32 = got[i]
                .iter()
                .zip(&item.vector)
                .map(|(a, b)| a * b)
                .sum::<f32>()
                / item.vector.iter().map(|b| b * b).sum::<f32>().sqrt();
            assert!(
                cos >= 0.999,
                "text {i} ({:?}…): cosine {cos}",
                &item.text.chars().take(40).collect::<String>()
            );
            worst = worst.min(cos);
            let base_cos: f32 = plain[i].iter().zip(&item.vector).map(|(a, b)| a * b).sum();
            moved = moved.max(1.0 - base_cos);
        }
        eprintln!("batch {batch_size}: {} texts, min cosine {worst:.7}; the adapter moves them by up to {moved:.4} (1 - cosine to the base model)", texts.len());
        // The reference is the adapted model's, not the base model's.
        assert!(moved > 0.001, "the reference looks like the base model's");
    }
}

/// The tiny model with an adapter, in `tmp`: its directory and the adapter.
fn adapted_tiny(tmp: &Path) -> (ModelDir, Adapter) {
    let model = make_model(tmp, Some(16));
    let (tensors, meta) = adapter_parts(&model, &random_factors());
    let path = tmp.join("adapter.safetensors");
    write_adapter(&path, &tensors, &meta);
    (ModelDir::open(tmp).unwrap(), Adapter::open(&path).unwrap())
}

#[test]
fn a_prepared_copy_embeds_as_the_merge_and_a_damaged_one_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, adapter) = adapted_tiny(tmp.path());
    let cache = tmp.path().join("prepared");
    let load = || {
        BertEmbedder::load_prepared(&dir, EmbedOptions::default(), Some(&adapter), Some(&cache))
            .unwrap()
    };
    let want = BertEmbedder::load_adapted(&dir, EmbedOptions::default(), Some(&adapter))
        .unwrap()
        .embed(&TEXTS)
        .unwrap();
    // The first load merges and writes the copy; the second maps it.
    let first = load();
    assert_eq!(first.prepared_copy(), None);
    assert_eq!(first.embed(&TEXTS).unwrap(), want);
    let second = load();
    let file = second
        .prepared_copy()
        .expect("the copy is used")
        .to_path_buf();
    assert_eq!(second.embed(&TEXTS).unwrap(), want, "bit for bit");
    drop(second);
    // A flipped byte in the values, then a truncated file: each is found, removed, merged again
    // (the same embeddings) and written anew.
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damages: [Damage; 2] = [
        Box::new(move |b: &mut Vec<u8>| b[len - 5] ^= 0x10),
        Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2)),
    ];
    for damage in damages {
        let mut bytes = std::fs::read(&file).unwrap();
        damage(&mut bytes);
        std::fs::write(&file, bytes).unwrap();
        let again = load();
        assert_eq!(again.prepared_copy(), None, "a damaged copy is not used");
        assert_eq!(again.embed(&TEXTS).unwrap(), want);
        let next = load();
        assert_eq!(
            next.prepared_copy(),
            Some(file.as_path()),
            "rewritten intact"
        );
        assert_eq!(next.embed(&TEXTS).unwrap(), want);
    }
    // Another adapter never finds this copy.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (dir2, adapter2) = adapted_tiny(&other);
    let e = BertEmbedder::load_prepared(
        &dir2,
        EmbedOptions::default(),
        Some(&adapter2),
        Some(&cache),
    )
    .unwrap();
    assert_eq!(e.prepared_copy(), None);
}

#[test]
fn concurrent_first_loads_leave_one_intact_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, adapter) = adapted_tiny(tmp.path());
    let cache = tmp.path().join("prepared");
    let want = BertEmbedder::load_adapted(&dir, EmbedOptions::default(), Some(&adapter))
        .unwrap()
        .embed(&TEXTS)
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let e = BertEmbedder::load_prepared(
                    &dir,
                    EmbedOptions::default(),
                    Some(&adapter),
                    Some(&cache),
                )
                .unwrap();
                assert_eq!(e.embed(&TEXTS).unwrap(), want);
            });
        }
    });
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary file left: {files:?}");
    let e =
        BertEmbedder::load_prepared(&dir, EmbedOptions::default(), Some(&adapter), Some(&cache))
            .unwrap();
    assert!(e.prepared_copy().is_some());
    assert_eq!(e.embed(&TEXTS).unwrap(), want);
}

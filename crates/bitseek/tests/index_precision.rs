//! The precision `bitseek index` embeds with: int8 for a new index where the CPU runs the 8-bit
//! path on its VNNI kernel (f32 elsewhere), the existing index's on a plain re-run, and what
//! `--int8` / `--f32` say when given (switching re-embeds every unit). A tiny random model stands
//! in for the real one.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn index(repo: &Path, model: &Path, flags: &[&str]) -> Value {
    index_with(repo, model, flags, None)
}

fn index_with(repo: &Path, model: &Path, flags: &[&str], kernels: Option<&str>) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitseek"));
    if let Some(k) = kernels {
        cmd.env("BITSEEK_KERNELS", k);
    }
    let out = cmd
        .arg("index")
        .arg(repo)
        .arg("--model-dir")
        .arg(model)
        .arg("--json")
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bitseek index {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn write_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("lib.rs"),
        "/// Adds.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\npub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
    )
    .unwrap();
    repo
}

fn precision(repo: &Path) -> String {
    bitseek_codesearch::CodeIndex::open(repo)
        .unwrap()
        .model()
        .precision
        .clone()
}

#[test]
fn a_new_index_takes_the_cpus_default_and_re_runs_keep_the_indexs_precision() {
    let repo = write_repo();
    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
    let default = if bitseek_embed::int8_fast() {
        "int8"
    } else {
        "f32"
    };
    let other = if default == "int8" { "f32" } else { "int8" };

    let first = index(repo.path(), model.path(), &[]);
    assert_eq!(first["units_embedded"], 2, "{first}");
    assert_eq!(precision(repo.path()), default);

    // Switching is asked for: every unit is embedded again in the other precision.
    let switched = index(repo.path(), model.path(), &[&format!("--{other}")]);
    assert_eq!(switched["units_embedded"], 2, "{switched}");
    assert_eq!(precision(repo.path()), other);

    // A plain re-run keeps the index's precision, whatever the CPU's default: nothing re-embedded.
    let again = index(repo.path(), model.path(), &[]);
    assert_eq!(
        (
            again["units_embedded"].as_u64(),
            again["units_reused"].as_u64()
        ),
        (Some(0), Some(2)),
        "{again}"
    );
    assert_eq!(precision(repo.path()), other);
}

#[test]
fn without_the_vnni_kernel_a_new_index_is_f32() {
    // Capped below AVX-512 the 8-bit layers run on their scalar twin, slower than f32.
    let repo = write_repo();
    let model = tempfile::tempdir().unwrap();
    bitseek_codesearch::testing::write_tiny_model(model.path(), 1).unwrap();
    index_with(repo.path(), model.path(), &[], Some("avx2"));
    assert_eq!(precision(repo.path()), "f32");
    // Asked for, int8 is still what the index gets.
    index_with(repo.path(), model.path(), &["--int8"], Some("avx2"));
    assert_eq!(precision(repo.path()), "int8");
    // A re-run there keeps int8 (switching re-embeds, never unasked) and says how to leave it.
    let out = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .env("BITSEEK_KERNELS", "avx2")
        .arg("index")
        .arg(repo.path())
        .arg("--model-dir")
        .arg(model.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("no AVX-512 VNNI") && err.contains("--f32"),
        "{err}"
    );
    assert_eq!(precision(repo.path()), "int8");
}

#[test]
fn int8_and_f32_together_are_refused() {
    let repo = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .arg("index")
        .arg(repo.path())
        .args(["--int8", "--f32"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--int8") && err.contains("--f32"), "{err}");
}

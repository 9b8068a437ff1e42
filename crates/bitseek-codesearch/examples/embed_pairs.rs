//! Embeds both sides of a pairs file with bitseek's own model and writes them beside it as
//! `<stem>.query.f32.npy` and `<stem>.code.f32.npy` (row i = line i, L2-normalised): the
//! training and test vectors of the learned code-search head (`scripts/mine_pairs.py` makes the
//! pairs, `scripts/head_vectors.py` turns these into what `bitseek train` and `eval-code` read).
//!
//!     cargo run --release -p bitseek-codesearch --example embed_pairs -- PAIRS.jsonl [MODEL_DIR [ADAPTER]]
//!
//! With ADAPTER, a LoRA adapter (`scripts/train_adapter.py`) is merged into the model first.

use bitseek_codesearch::eval::{PairSet, PairVectors, Progress, VectorSource};
use bitseek_index::input::write_npy_f32;
use std::path::PathBuf;
use std::time::Instant;

/// Prints how far embedding has got, every 2,000 texts.
struct Log {
    done: u64,
    total: u64,
    start: Instant,
}

impl Progress for Log {
    fn begin(&mut self, stage: &str, total: u64) {
        self.total = total;
        eprintln!("{stage}: {total} texts");
    }
    fn advance(&mut self, steps: u64) {
        let before = self.done / 2000;
        self.done += steps;
        if self.done / 2000 != before {
            let s = self.start.elapsed().as_secs_f64();
            eprintln!(
                "{}/{} texts, {:.1}/s",
                self.done,
                self.total,
                self.done as f64 / s
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pairs = PathBuf::from(args.next().ok_or_else(|| {
        "usage: embed_pairs PAIRS.jsonl [MODEL_DIR [ADAPTER]] (a file of query → code pairs)"
            .to_string()
    })?);
    let source = VectorSource {
        embed: true,
        model_dir: args.next().map(PathBuf::from),
        int8: false,
        adapter: args.next().map(bitseek_embed::Adapter::open).transpose()?,
    };
    let set = PairSet::read(&pairs, None)?;
    let mut log = Log {
        done: 0,
        total: 0,
        start: Instant::now(),
    };
    let v = PairVectors::load(&set, &source, &mut log)?;
    let name = pairs.file_name().unwrap_or_default().to_string_lossy();
    let stem = name
        .trim_end_matches(".gz")
        .trim_end_matches(".jsonl")
        .to_string();
    for (side, vectors) in [("query", &v.queries), ("code", &v.codes)] {
        let out = pairs.with_file_name(format!("{stem}.{side}.f32.npy"));
        write_npy_f32(&out, vectors.rows(), vectors.dim, &vectors.data)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

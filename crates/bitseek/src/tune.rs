//! `bitseek tune`: every format within a byte budget, measured on a calibration split, as a
//! Pareto table of accuracy and cost, and the winner `--quantizer auto:BYTES` would build.

use bitseek_index::Metric;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Vectors to tune on: .npy (float32/float16, 2-D), .fvecs, or JSON lines.
    #[arg(long)]
    input: PathBuf,
    /// Calibration queries; default: rows held out of the input.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Queries alloc allocates its widths for (default: rows held out of its fit), e.g. text
    /// queries when the input holds code embeddings.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// A trained encoder (`bitseek train`): its learned codes join the search when they fit the
    /// budget (cosine only).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Bytes per vector the codes (and their factors) may take.
    #[arg(long, value_parser = crate::positive)]
    budget: usize,
    /// cosine, dot or l2.
    #[arg(long, default_value = "cosine")]
    metric: Metric,
    /// Hits per query whose recall is measured.
    #[arg(short, long, default_value_t = 10, value_parser = crate::positive)]
    k: usize,
    /// Seed of the calibration split and of the formats' fits.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    use bitseek_index::input::{read_vectors, validate, Checks};
    let vectors = read_vectors(&a.input)?;
    let checks = Checks {
        expected_dim: None,
        reject_zero: a.metric == Metric::Cosine,
    };
    validate(&vectors, &a.input, &checks)?;
    let queries = match &a.queries {
        Some(p) => {
            let q = read_vectors(p)?;
            validate(
                &q,
                p,
                &Checks {
                    expected_dim: Some(vectors.dim),
                    ..checks
                },
            )?;
            Some(q)
        }
        None => None,
    };
    let calib = match &a.calib {
        Some(p) => {
            let c = read_vectors(p)?;
            validate(
                &c,
                p,
                &Checks {
                    expected_dim: Some(vectors.dim),
                    ..checks
                },
            )?;
            Some(c)
        }
        None => None,
    };
    let opts = bitseek_index::tune::TuneOptions {
        budget: a.budget,
        metric: a.metric,
        seed: a.seed,
        k: a.k,
        calib: calib.as_ref(),
        encoder: a.encoder.as_deref(),
    };
    let tuning = bitseek_index::tune::tune(&vectors, queries.as_ref(), &a.input, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string(&tuning)?);
        return Ok(());
    }
    println!(
        "formats within {} bytes/vector: {} queries over {} rows, recall@{}",
        tuning.budget, tuning.queries, tuning.rows, tuning.k
    );
    println!(
        "{:<14} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>12}  pareto",
        "format", "bytes", "raw", "x2", "x4", "build s", "scan ms", "ACE/query"
    );
    for f in &tuning.formats {
        println!(
            "{:<14} {:>6} {:>8.4} {:>8.4} {:>8.4} {:>9.2} {:>9.3} {:>12.3e}  {}",
            f.quantizer,
            f.bytes_per_vector,
            f.recall_raw,
            f.recall_x2,
            f.recall_x4,
            f.build_seconds,
            f.scan_ms_per_query,
            f.ace_per_query as f64,
            if f.pareto { "*" } else { "" }
        );
    }
    println!(
        "winner: {} (build with --quantizer auto:{} to use it)",
        tuning.winner, tuning.budget
    );
    Ok(())
}

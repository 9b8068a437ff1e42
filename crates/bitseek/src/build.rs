//! `bitseek build`: vectors in, one index file out.

use anyhow::Context;
use bitseek_codes::quantizer::{QuantizerKind, ScaleSearch};
use bitseek_index::{BuildOptions, Index, Keep, Metric, QuantizerChoice};
use std::path::PathBuf;

use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Vectors: .npy (float32/float16, 2-D), .fvecs, or JSON lines {"id": u64, "vector": [..]}.
    #[arg(long)]
    input: PathBuf,
    /// sign, rabitq, residual2, residual3, residual4 (up to residual8), ternary, int4, fp8
    /// (E4M3), fp8-e5m2, int8, alloc:BYTES (bits per PCA segment chosen for BYTES bytes/vector),
    /// auto:BYTES (the best format within BYTES, as `bitseek tune` finds it), or
    /// learned:ENCODER_FILE (an encoder from `bitseek train`).
    #[arg(long, default_value = "rabitq")]
    quantizer: QuantizerChoice,
    /// What to keep for rescoring: f32, int8, fp8, int4 or none.
    #[arg(long, default_value = "f32")]
    keep: Keep,
    /// cosine, dot or l2.
    #[arg(long, default_value = "cosine")]
    metric: Metric,
    /// Seed of the random rotation and of query rounding.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// How multi-bit codes choose their scale: optimal (Extended RaBitQ) or greedy.
    #[arg(long, default_value = "optimal")]
    scale_search: ScaleSearch,
    /// flat (every code scanned), ivf (k-means lists of RaBitQ codes, searched `--effort` lists
    /// at a time) or graph (a proximity graph whose nodes hold their neighbours' RaBitQ codes,
    /// searched with a beam `--effort` wide; needs a kept copy, and is rebuilt rather than
    /// appended to).
    #[arg(long, default_value = "flat", value_parser = ["flat", "ivf", "graph"])]
    index: String,
    /// Lists of an IVF index (default: about 4·√rows).
    #[arg(long, value_parser = crate::positive)]
    lists: Option<usize>,
    /// Neighbours per node of a graph index, a multiple of 32 (default 32: one FastScan block).
    #[arg(long, value_parser = crate::positive)]
    degree: Option<usize>,
    /// Calibration queries for alloc:BYTES and auto:BYTES (.npy, .fvecs or JSON lines): the
    /// widths are chosen for the recall of these queries instead of rows held out of --input.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Where to write the index (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let vectors = bitseek_index::input::read_vectors(&a.input)?;
    let rows = vectors.rows();
    let read_seconds = start.elapsed().as_secs_f64();
    let opts = BuildOptions {
        quantizer: QuantizerKind::Rabitq,
        metric: a.metric,
        keep: a.keep,
        seed: a.seed,
        scale_search: a.scale_search,
    };
    let bar = crate::progress(rows as u64, "encoding", a.json);
    let t = Instant::now();
    let progress = |n: usize| bar.set_position(n as u64);
    let ivf = (a.index == "ivf").then_some(bitseek_index::ivf::IvfOptions { lists: a.lists });
    if ivf.is_none() && a.lists.is_some() {
        anyhow::bail!("--lists is for --index ivf; drop it or add --index ivf");
    }
    if a.index != "graph" && a.degree.is_some() {
        anyhow::bail!("--degree is for --index graph; drop it or add --index graph");
    }
    if a.index == "graph" && a.calib.is_some() {
        anyhow::bail!(
            "--calib is for flat alloc:BYTES and auto:BYTES indexes; drop it for --index graph"
        );
    }
    let index = if a.index == "graph" {
        let graph = bitseek_index::graph::GraphOptions { degree: a.degree };
        Index::build_graph(vectors, &a.input, &opts, &a.quantizer, graph, &progress)?
    } else {
        let calib = a
            .calib
            .as_ref()
            .map(|p| bitseek_index::input::read_vectors(p))
            .transpose()?;
        Index::build_calibrated(
            vectors,
            &a.input,
            &opts,
            &a.quantizer,
            ivf,
            calib.as_ref(),
            &progress,
        )?
    };
    let build_seconds = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let file_bytes = index
        .save(&a.out)
        .with_context(|| format!("cannot write index {}", a.out.display()))?;
    let m = index.meta();
    let summary = serde_json::json!({
        "index": a.out,
        "rows": m.rows,
        "dim": m.dim,
        "metric": m.metric,
        "quantizer": m.quantizer.to_string(),
        "keep": m.keep,
        "ivf_lists": index.ivf_lists(),
        "ivf_imbalance": index.ivf_lists().map(|_| bitseek_index::ivf::kmeans::imbalance(&index.ivf_list_sizes())),
        "graph_degree": index.graph_degree(),
        "bytes_per_vector": index.code_bytes_per_vector(),
        "read_seconds": read_seconds,
        "build_seconds": build_seconds,
        "file_bytes": file_bytes,
        "allocation": m.allocation,
        "auto": m.auto,
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "built {} ({} vectors × {} dims, {}, {}, keep {}): {} code bytes/vector, {:.2} s to encode, {:.1} MB on disk",
            a.out.display(),
            m.rows,
            m.dim,
            m.quantizer,
            m.metric,
            m.keep,
            index.code_bytes_per_vector(),
            build_seconds,
            file_bytes as f64 / 1e6
        );
        if let Some(t) = &m.auto {
            println!(
                "  auto:{}: {} had the best raw recall@{} ({:.4}) of {} formats on {} calibration queries",
                t.budget,
                t.winner,
                t.k,
                t.formats.first().map_or(0.0, |f| f.recall_raw),
                t.formats.len(),
                t.queries
            );
        }
        if let Some(a) = &m.allocation {
            println!(
                "  widths by segment of 32 dims (bits per dim, by falling variance): {:?}; calibration recall@10 {:.4} (all 8-bit: {:.4})",
                a.widths, a.calib_recall, a.calib_recall_8bit
            );
        }
    }
    Ok(())
}

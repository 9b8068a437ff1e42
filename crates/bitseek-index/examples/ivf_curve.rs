//! Builds an IVF index in memory and prints its build time and its recall@10 / QPS curve, without
//! the CLI: the quick loop for changing the IVF's build or search and seeing both at once.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p bitseek-index --example ivf_curve -- \
//!     BASE.npy QUERIES.npy [EFFORTS, e.g. 32,64,128] [REPEAT] [LISTS]
//! ```
//! Builds with the pool's threads (set `RAYON_NUM_THREADS`), searches with one thread: all the
//! queries in one `search_batch_effort` call (k = 10, ×4 candidates rescored from the kept f32
//! copy, as `bitseek bench --effort` does), the median process-CPU time of REPEAT passes after a
//! warm-up. Recall is against exact float search over the same (normalised) base.

use bitseek_index::input::read_vectors;
use bitseek_index::ivf::IvfOptions;
use bitseek_index::{BuildOptions, Index, QuantizerChoice, SearchParams};
use std::path::Path;
use std::time::Instant;

/// CPU seconds this process has used (all its threads): on a shared machine it leaves out the
/// time other processes held the core.
fn cpu_seconds() -> f64 {
    cpu_time::ProcessTime::now().as_duration().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: ivf_curve BASE.npy QUERIES.npy [EFFORTS] [REPEAT] [LISTS]".into());
    }
    let efforts: Vec<usize> = args
        .get(3)
        .map_or("32,64,128", |s| s.as_str())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let repeat: usize = args.get(4).map_or(Ok(3), |s| s.parse())?;
    let lists: Option<usize> = args.get(5).map(|s| s.parse()).transpose()?;
    let base = read_vectors(Path::new(&args[1]))?;
    let queries = read_vectors(Path::new(&args[2]))?;
    let dim = base.dim;
    let (t, c) = (Instant::now(), cpu_seconds());
    let index = Index::build_with(
        base,
        Path::new(&args[1]),
        &BuildOptions::default(),
        &QuantizerChoice::Kind(BuildOptions::default().quantizer),
        Some(IvfOptions { lists }),
        &|_| {},
    )?;
    let (build, build_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    let sizes = index.ivf_list_sizes();
    println!(
        "build {build:.2} s ({build_cpu:.2} CPU-s), {} lists, imbalance {:.3}",
        sizes.len(),
        bitseek_index::ivf::kmeans::imbalance(&sizes)
    );
    let q = index.prepare_queries(&queries.data, dim)?;
    let nq = q.len() / dim;
    let truth = bitseek_index::eval::exact_ids(&index, None, &q, 10)?;
    let params = SearchParams {
        k: 10,
        oversample: 4,
        ..SearchParams::default()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    for &e in &efforts {
        let (recall, qps) = pool.install(|| -> Result<(f64, f64), bitseek_index::IndexError> {
            let hits = index.search_batch_effort(&q, dim, &params, Some(e), None)?;
            let recall = bitseek_index::eval::recall(&hits, &truth);
            let mut times = Vec::new();
            for _ in 0..repeat {
                let c = cpu_seconds();
                std::hint::black_box(index.search_batch_effort(&q, dim, &params, Some(e), None)?);
                times.push(cpu_seconds() - c);
            }
            times.sort_by(f64::total_cmp);
            Ok((recall, nq as f64 / times[times.len() / 2]))
        })?;
        println!("effort {e:>4}: recall {recall:.4}  {qps:8.0} q/cpu-s");
    }
    Ok(())
}

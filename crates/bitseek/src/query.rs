//! `bitseek query`: top-k hits for each query vector.

use bitseek_index::SearchParams;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    s: crate::Searched,
    /// Candidates per hit taken from the codes and rescored from the kept copy.
    #[arg(long, default_value_t = 4, value_parser = crate::positive)]
    oversample: usize,
    /// Rank by the codes alone (no rescoring even if the index keeps a copy).
    #[arg(long)]
    no_rescore: bool,
    /// Encode queries like stored vectors (code vs code, SDC) instead of 4-bit asymmetric.
    #[arg(long)]
    symmetric: bool,
    /// One JSON line per query: {"query": i, "hits": [{"id", "score"}, ..]}.
    #[arg(long)]
    json: bool,
}

/// One line of `--json` output (a struct, so `query` comes before `hits`).
#[derive(serde::Serialize)]
struct Line<'a> {
    query: u64,
    hits: &'a [bitseek_index::Hit],
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let index = crate::open_index(&a.s.index)?;
    let queries = crate::read_queries(&a.s.queries, &index)?;
    let params = SearchParams {
        k: a.s.k,
        oversample: a.oversample,
        rescore: !a.no_rescore,
        mode: crate::query_mode(a.symmetric, &index.meta().quantizer)?,
        query_bits: a.s.query_bits,
    };
    let results =
        index.search_batch_effort(&queries.data, queries.dim, &params, a.s.effort(), None)?;
    let names = queries.ids_or_rows();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (qi, hits) in results.iter().enumerate() {
        if a.json {
            let line = Line {
                query: names[qi],
                hits,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            writeln!(out, "query {}", names[qi])?;
            for (rank, h) in hits.iter().enumerate() {
                match h.bound {
                    Some(b) => writeln!(
                        out,
                        "  {:>3}. id {:<10} score {:.4} ± {:.4}",
                        rank + 1,
                        h.id,
                        h.score,
                        b
                    )?,
                    None => writeln!(
                        out,
                        "  {:>3}. id {:<10} score {:.4}",
                        rank + 1,
                        h.id,
                        h.score
                    )?,
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

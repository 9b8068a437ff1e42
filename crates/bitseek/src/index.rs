//! `bitseek index [DIR]`: index a repository for `bitseek search` (crate `bitseek-codesearch`).

use bitseek_codesearch::{index_repo, AdapterChoice, Encoder, IndexOptions, IndexReport};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The repository to index; the index goes to DIR/.bitseek. Re-running re-embeds only files
    /// whose content changed and drops deleted ones.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// A BERT-family model directory (config.json, tokenizer.json, model.safetensors) instead of
    /// $BITSEEK_MODEL_DIR or the one `bitseek model fetch` installs.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// List the skipped files and directories, with why.
    #[arg(short, long)]
    verbose: bool,
    /// Embed the units with the model's 8-bit dense layers: about twice as fast as f32 on CPUs
    /// with AVX-512 VNNI, MRR within 0.5% on the dev sets. The default for a new index where the
    /// CPU has VNNI (elsewhere the 8-bit path is slower than f32, and f32 is the default); an
    /// existing index keeps the precision it was built with unless --int8 or --f32 says
    /// otherwise (switching re-embeds every unit). Questions are embedded in f32 either way.
    #[arg(long, conflicts_with = "f32")]
    int8: bool,
    /// Embed the units in f32 (see --int8): the slower, exact path.
    #[arg(long = "f32")]
    f32: bool,
    /// The code head on top of the model: `default` (the head shipped with bitseek, trained for
    /// code search on all-MiniLM-L6-v2; used when the model is that one), `none` (the model's
    /// vectors alone), or a head file. Changing it re-embeds every unit; `bitseek search` uses
    /// the index's.
    #[arg(long, default_value = "default", value_name = "default|none|FILE")]
    encoder: Encoder,
    /// The LoRA adapter merged into the model's weights (at load: embedding costs the same):
    /// `default` (bitseek's default for the model), `builtin` (the adapter shipped with bitseek,
    /// trained for code search on all-MiniLM-L6-v2), `none`, or an adapter file
    /// (scripts/train_adapter.py). Changing it re-embeds every unit; `bitseek search` uses the
    /// index's.
    #[arg(
        long,
        default_value = "default",
        value_name = "default|none|builtin|FILE"
    )]
    adapter: AdapterChoice,
    /// Texts per embedding call (progress is shown after each).
    #[arg(long, default_value_t = 256, value_parser = crate::positive)]
    batch: usize,
    /// One JSON object: {"dir", "index", "units", "files", "files_embedded", "files_reused",
    /// "files_deleted", "units_embedded", "units_reused", "skipped", "bytes", "seconds", …}.
    #[arg(long)]
    json: bool,
    /// Keep indexing: after the first update, watch DIR and update the index whenever files
    /// change (debounced; .gitignore'd files and the index's own writes do not count), embedding
    /// only changed files. Prints one line (with --json, one object) per update; stop with Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// With --watch: quiet time after the last change before an update starts.
    #[arg(long, default_value_t = 300, value_name = "MS", requires = "watch")]
    debounce_ms: u64,
    /// Check every checksum of DIR's index (segment, payloads, lexical file) instead of indexing,
    /// and fail naming any damaged file. Searches check them on the first open after each
    /// write only; this trusts nothing.
    #[arg(long, conflicts_with_all = ["int8", "f32", "model_dir", "watch", "encoder", "adapter"])]
    verify: bool,
}

/// The `--json` output.
#[derive(serde::Serialize)]
pub(crate) struct Summary<'a> {
    dir: String,
    index: String,
    model: &'a str,
    units: usize,
    files: usize,
    files_embedded: usize,
    files_reused: usize,
    files_deleted: usize,
    units_embedded: usize,
    units_reused: usize,
    skipped: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_paths: Option<Vec<Skip>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rebuilt_because: Option<&'a str>,
    bytes: u64,
    generation: u64,
    seconds: f64,
}

#[derive(serde::Serialize)]
struct Skip {
    path: String,
    reason: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    run_to(a, &mut out)
}

pub(crate) fn run_to(a: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let start = Instant::now();
    if a.verify {
        let v = bitseek_codesearch::verify_index(&a.dir)?;
        let seconds = start.elapsed().as_secs_f64();
        let index = bitseek_codesearch::index_dir(&a.dir);
        if a.json {
            let line = serde_json::json!({
                "dir": a.dir.display().to_string(),
                "index": index.display().to_string(),
                "verified": true,
                "generation": v.generation,
                "units": v.units,
                "files": v.files,
                "bytes": v.bytes,
                "seconds": seconds,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "verified {}: generation {}, {} units in {} files, {} checked in {seconds:.1} s",
                index.display(),
                v.generation,
                v.units,
                v.files,
                human_bytes(v.bytes)
            )?;
        }
        out.flush()?;
        return Ok(());
    }
    let choice = match (a.int8, a.f32) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let existing = bitseek_codesearch::CodeIndex::open(&a.dir).ok();
    let int8 = bitseek_codesearch::index_int8(choice, existing.as_ref().map(|i| i.model()));
    drop(existing);
    // An index made int8 elsewhere (or asked for) keeps int8 here, on the scalar 8-bit code.
    if let Some(w) = bitseek_codesearch::slow_int8_warning(int8) {
        eprintln!("warning: {w}");
    }
    let (embedder, model) =
        bitseek_codesearch::load_tuned(a.model_dir.as_deref(), int8, &a.adapter, &a.encoder)?;
    let opts = IndexOptions {
        batch: a.batch,
        ..IndexOptions::default()
    };
    if a.watch {
        return crate::watch::run(
            &a.dir,
            &embedder.units(),
            &model,
            opts,
            a.debounce_ms,
            a.json,
            out,
        );
    }
    let bar = crate::progress(0, "embedding", a.json);
    // Units per second and the time left, the two numbers a long first index is watched for.
    // indicatif's own {per_sec} prints four decimals ("142.6611/s"); whole units read better.
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {pos}/{len} units ({rate} units/s, {eta} left)",
    ) {
        let style = style.with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}", s.per_sec());
            },
        );
        bar.set_style(style.progress_chars("=> "));
    }
    let report = index_repo(&a.dir, &embedder.units(), &model, &opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    if a.json {
        let summary = summary(&report, &model.name, seconds, a.verbose);
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        print_human(out, &report, seconds, a.verbose)?;
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn summary<'a>(
    r: &'a IndexReport,
    model: &'a str,
    seconds: f64,
    verbose: bool,
) -> Summary<'a> {
    Summary {
        dir: r.root.display().to_string(),
        index: r.dir.display().to_string(),
        model,
        units: r.units,
        files: r.files,
        files_embedded: r.files_embedded,
        files_reused: r.files_reused,
        files_deleted: r.files_deleted,
        units_embedded: r.units_embedded,
        units_reused: r.units_reused,
        skipped: r.skipped.len(),
        skipped_paths: verbose.then(|| {
            r.skipped
                .iter()
                .map(|(p, why)| Skip {
                    path: p.display().to_string(),
                    reason: why.to_string(),
                })
                .collect()
        }),
        rebuilt_because: r.rebuilt_because.as_deref(),
        bytes: r.bytes,
        generation: r.generation,
        seconds,
    }
}

pub(crate) fn print_human(
    out: &mut dyn Write,
    r: &IndexReport,
    seconds: f64,
    verbose: bool,
) -> std::io::Result<()> {
    if let Some(why) = &r.rebuilt_because {
        writeln!(out, "re-embedding everything: {why}")?;
    }
    writeln!(
        out,
        "indexed {}: {} units in {} files ({} files embedded, {} reused, {} deleted; {} units embedded) in {:.1} s",
        r.root.display(),
        r.units,
        r.files,
        r.files_embedded,
        r.files_reused,
        r.files_deleted,
        r.units_embedded,
        seconds
    )?;
    writeln!(
        out,
        "index: {} ({}, generation {})",
        r.dir.display(),
        human_bytes(r.bytes),
        r.generation
    )?;
    if !r.skipped.is_empty() {
        if verbose {
            writeln!(out, "skipped {} paths:", r.skipped.len())?;
            for (path, why) in &r.skipped {
                writeln!(out, "  {}  ({why})", path.display())?;
            }
        } else {
            writeln!(
                out,
                "skipped {} paths (vendored, generated, binary, large or unreadable; --verbose lists them)",
                r.skipped.len()
            )?;
        }
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

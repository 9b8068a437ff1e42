//! Prints the units of a file, or a summary for a directory.
//!
//! ```sh
//! cargo run -p bitseek-chunk --example chunk -- crates/            # summary, timing, skipped
//! cargo run -p bitseek-chunk --example chunk -- src/lib.rs --units # every unit (--text: and its text)
//! ```

use std::path::PathBuf;
use std::time::Instant;

use bitseek_chunk::{chunk_repo, ChunkOptions, UnitKind, WalkOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(root) = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
    else {
        eprintln!("usage: chunk PATH [--units]");
        std::process::exit(2);
    };
    let show_units = args.iter().any(|a| a == "--units");
    let show_text = args.iter().any(|a| a == "--text");
    let t = Instant::now();
    let out = chunk_repo(&root, &WalkOptions::default(), &ChunkOptions::default());
    let secs = t.elapsed().as_secs_f64();
    if show_units {
        for u in &out.units {
            println!(
                "{}:{}-{} (doc {}) {} {} parent={:?}\n  sig: {}\n  doc: {:?}",
                u.path.display(),
                u.start_line,
                u.end_line,
                u.doc_start_line,
                u.kind,
                u.name,
                u.parent,
                u.signature,
                u.doc
            );
            if show_text {
                println!("---\n{}\n---", u.text);
            }
        }
    }
    let windows = out
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Window)
        .count();
    println!(
        "{} files, {} units ({} windows) in {:.3} s",
        out.files.len(),
        out.units.len(),
        windows,
        secs
    );
    for (path, reason) in &out.skipped {
        println!("skipped {}: {reason}", path.display());
    }
}

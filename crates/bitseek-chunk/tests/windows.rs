//! Line windows for text files, and for source files without definitions.

use std::path::Path;

use bitseek_chunk::{chunk_file, chunk_file_with, ChunkOptions, Lang, UnitKind};

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

#[test]
fn windows_overlap_by_ten_lines() {
    let units = chunk_file(Path::new("docs/notes.md"), &numbered(100)).unwrap();
    let spans: Vec<(usize, usize)> = units.iter().map(|u| (u.start_line, u.end_line)).collect();
    assert_eq!(spans, [(1, 40), (31, 70), (61, 100)]);
    for u in &units {
        assert_eq!((u.lang, u.kind), (Lang::Text, UnitKind::Window));
        assert_eq!(u.name, "notes.md");
        assert_eq!(u.doc_start_line, u.start_line);
        assert_eq!(u.signature, format!("line {}", u.start_line));
        assert_eq!(u.text.lines().count(), u.end_line - u.start_line + 1);
        assert!(u.text.starts_with(&format!("line {}\n", u.start_line)));
        assert!(u.text.ends_with(&format!("line {}", u.end_line)));
    }
}

#[test]
fn short_files_make_one_window_and_the_last_window_is_short() {
    let units = chunk_file(Path::new("Cargo.toml"), &numbered(7)).unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!((units[0].start_line, units[0].end_line), (1, 7));

    let units = chunk_file(Path::new("a.yaml"), &numbered(45)).unwrap();
    let spans: Vec<(usize, usize)> = units.iter().map(|u| (u.start_line, u.end_line)).collect();
    assert_eq!(spans, [(1, 40), (31, 45)]);
}

#[test]
fn blank_files_and_blank_windows_make_no_units() {
    assert!(chunk_file(Path::new("empty.txt"), "").unwrap().is_empty());
    assert!(chunk_file(Path::new("blank.txt"), "\n\n  \n")
        .unwrap()
        .is_empty());
    let mut src = "# title\n".to_string();
    src.push_str(&"\n".repeat(100));
    let units = chunk_file(Path::new("README.md"), &src).unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!((units[0].start_line, units[0].end_line), (1, 40));
}

#[test]
fn custom_window_size_and_bad_options() {
    let opts = ChunkOptions {
        window_lines: 10,
        window_overlap: 2,
        ..ChunkOptions::default()
    };
    let units = chunk_file_with(Path::new("run.sh"), &numbered(25), &opts).unwrap();
    let spans: Vec<(usize, usize)> = units.iter().map(|u| (u.start_line, u.end_line)).collect();
    assert_eq!(spans, [(1, 10), (9, 18), (17, 25)]);

    let bad = ChunkOptions {
        window_lines: 10,
        window_overlap: 10,
        ..ChunkOptions::default()
    };
    let err = chunk_file_with(Path::new("run.sh"), "x\n", &bad).unwrap_err();
    assert!(
        err.to_string().contains("must be below the window size"),
        "{err}"
    );
}

#[test]
fn source_without_definitions_falls_back_to_windows() {
    let src = "import os\nprint(os.getcwd())\n";
    let units = chunk_file(Path::new("script.py"), src).unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(
        (units[0].lang, units[0].kind),
        (Lang::Python, UnitKind::Window)
    );
    assert_eq!((units[0].start_line, units[0].end_line), (1, 2));
    assert_eq!(units[0].signature, "import os");
}

#[test]
fn text_is_cut_at_a_line_boundary() {
    let opts = ChunkOptions {
        max_text_bytes: 50,
        ..ChunkOptions::default()
    };
    let units = chunk_file_with(Path::new("a.txt"), &numbered(40), &opts).unwrap();
    let text = &units[0].text;
    assert!(text.len() <= 50 + "\n…".len(), "{text}");
    assert!(text.ends_with("\n…"), "{text}");
    assert!(text.lines().rev().nth(1).unwrap().starts_with("line "));

    // a long body is cut too, and multi-byte characters survive
    let long = format!(
        "def f():\n    \"\"\"Doc.\"\"\"\n{}",
        "    x = 'é'\n".repeat(1000)
    );
    let units = chunk_file(Path::new("f.py"), &long).unwrap();
    assert!(units[0].text.len() <= ChunkOptions::default().max_text_bytes + 4);
    assert_eq!(units[0].end_line, 1002);
}

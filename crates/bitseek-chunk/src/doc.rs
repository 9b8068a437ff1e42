//! Doc comments and docstrings: which comments belong to a definition, and their text without
//! markers.

use tree_sitter::Node;

use crate::chunk::{last_row, slice};
use crate::Lang;

fn is_comment(kind: &str) -> bool {
    matches!(kind, "comment" | "line_comment" | "block_comment")
}

/// Siblings that sit between a definition and its doc comment without being either.
fn is_attribute(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Rust => kind == "attribute_item",
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => kind == "decorator",
        Lang::Cpp => kind == "attribute_declaration",
        _ => false,
    }
}

/// The doc comment above `outer` and the first row (0-based) it and the definition's attributes
/// occupy (`outer`'s own start row when there are none).
///
/// - Rust: `///` and `/** */` outer doc comments and `#[doc = "…"]`, through attributes and blank
///   lines (the language attaches them regardless); `//!` and plain comments stop the search.
/// - JS/TS: the nearest `/** … */` block above, through blank lines (JSDoc and TypeScript attach
///   it so), except a licence notice and, across a blank line, the file's own header comment.
/// - Java: the nearest `/** … */` block, directly above (no blank line).
/// - Go, C, C++: the comments directly above, up to the first blank line; a comment that trails
///   code on its line is not a doc comment.
/// - Python: none here (see [`python_docstring`]).
pub(crate) fn leading(lang: Lang, outer: Node<'_>, src: &str) -> (String, usize) {
    let mut top_row = outer.start_position().row;
    let mut pieces: Vec<String> = Vec::new(); // bottom-up
    if lang == Lang::Python {
        return (String::new(), top_row);
    }
    let mut cur = outer.prev_sibling();
    while let Some(s) = cur {
        let kind = s.kind();
        let adjacent = last_row(s) + 1 >= top_row;
        let text = slice(src, s.byte_range());
        if is_attribute(lang, kind) {
            if !adjacent && lang != Lang::Rust {
                break;
            }
            if lang == Lang::Rust {
                if let Some(d) = rust_doc_attribute(text) {
                    pieces.push(d);
                }
            }
            top_row = s.start_position().row;
            cur = s.prev_sibling();
            continue;
        }
        if !is_comment(kind) {
            break;
        }
        // `x = 1; // note` belongs to the code on its line
        if let Some(p) = s.prev_sibling() {
            if !is_comment(p.kind()) && last_row(p) == s.start_position().row {
                break;
            }
        }
        match lang {
            Lang::Rust => {
                let outer_doc = (text.starts_with("///") && !text.starts_with("////"))
                    || (text.starts_with("/**")
                        && !text.starts_with("/***")
                        && !text.starts_with("/**/"));
                if !outer_doc {
                    break;
                }
                pieces.push(clean_comment(text));
            }
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
                let attached = adjacent || !is_file_header(s);
                if attached && is_jsdoc(text) && !is_licence(text) {
                    pieces.push(clean_comment(text));
                    top_row = s.start_position().row;
                }
                break;
            }
            Lang::Java => {
                if adjacent && is_jsdoc(text) {
                    pieces.push(clean_comment(text));
                    top_row = s.start_position().row;
                }
                break;
            }
            _ => {
                if !adjacent {
                    break;
                }
                pieces.push(clean_comment(text));
            }
        }
        top_row = s.start_position().row;
        cur = s.prev_sibling();
    }
    pieces.reverse();
    (trim_blank_lines(&pieces.join("\n")), top_row)
}

/// A `/** … */` block (not the empty `/**/`).
fn is_jsdoc(text: &str) -> bool {
    text.starts_with("/**") && !text.starts_with("/**/")
}

/// A licence notice rather than documentation (the markers `scripts/mine_js.py` skips too).
fn is_licence(text: &str) -> bool {
    let t = text.to_lowercase();
    [
        "copyright",
        "@license",
        "spdx-license-identifier",
        "all rights reserved",
        "licensed under",
        "permission is hereby granted",
    ]
    .iter()
    .any(|m| t.contains(m))
}

/// Whether `comment` opens its file: only comments (or a `#!` line) come before it.
fn is_file_header(comment: Node<'_>) -> bool {
    let mut cur = comment.prev_sibling();
    while let Some(s) = cur {
        if !is_comment(s.kind()) && s.kind() != "hash_bang_line" {
            return false;
        }
        cur = s.prev_sibling();
    }
    comment.parent().is_none_or(|p| p.kind() == "program")
}

/// `doc = "text"` inside `#[…]` → `text`.
fn rust_doc_attribute(attr: &str) -> Option<String> {
    let inner = attr.strip_prefix("#[")?.strip_suffix(']')?.trim();
    let rest = inner.strip_prefix("doc")?.trim_start().strip_prefix('=')?;
    let lit = rest.trim();
    let body = if let Some(raw) = lit.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let raw = &raw[hashes..];
        raw.strip_prefix('"')?
            .strip_suffix(&format!("\"{}", "#".repeat(hashes)))?
            .to_string()
    } else {
        unescape(lit.strip_prefix('"')?.strip_suffix('"')?)
    };
    Some(dedent(&body))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\n') => {
                // line continuation: skip the next line's leading whitespace
                let rest: String = chars.clone().collect();
                let trimmed = rest.trim_start();
                let skip = rest.chars().count() - trimmed.chars().count();
                for _ in 0..skip {
                    chars.next();
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The text of a `//`, `///`, `/* */` or `/** */` comment without its markers.
pub(crate) fn clean_comment(text: &str) -> String {
    let t = text.trim();
    if let Some(body) = t.strip_prefix("/*") {
        let body = body.strip_suffix("*/").unwrap_or(body);
        let body = body.trim_start_matches('*').trim_start_matches('!');
        let lines: Vec<&str> = body
            .lines()
            .map(|l| {
                let l = l.trim_start();
                match l.strip_prefix('*') {
                    Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
                    None => l,
                }
            })
            .collect();
        return trim_blank_lines(&lines.join("\n"));
    }
    let lines: Vec<&str> = t
        .lines()
        .map(|l| {
            let l = l.trim_start();
            let l = l.trim_start_matches('/').trim_start_matches('!');
            l.strip_prefix(' ').unwrap_or(l).trim_end()
        })
        .collect();
    trim_blank_lines(&lines.join("\n"))
}

fn trim_blank_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(a), Some(b)) => lines[a..=b].join("\n"),
        _ => String::new(),
    }
}

/// Removes the indentation the non-blank lines share, as Python's `inspect.cleandoc` does for all
/// lines after the first, and trims blank lines at both ends.
fn dedent(s: &str) -> String {
    let mut lines = s.lines();
    let first = lines.next().unwrap_or("").trim();
    let rest: Vec<&str> = lines.collect();
    let indent = rest
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = vec![first.to_string()];
    for l in rest {
        let cut = indent.min(l.len() - l.trim_start().len());
        out.push(l[cut..].trim_end().to_string());
    }
    trim_blank_lines(&out.join("\n"))
}

/// The docstring of a Python `def` or `class`: its body's first statement when that is a string.
pub(crate) fn python_docstring(body: Node<'_>, src: &str) -> String {
    let mut cursor = body.walk();
    let Some(first) = body
        .named_children(&mut cursor)
        .find(|c| c.kind() != "comment")
    else {
        return String::new();
    };
    if first.kind() != "expression_statement" {
        return String::new();
    }
    let Some(string) = first.named_child(0).filter(|s| s.kind() == "string") else {
        return String::new();
    };
    let lit = slice(src, string.byte_range());
    let lit = lit.trim_start_matches(|c: char| c.is_ascii_alphabetic()); // r, u, b, f prefixes
    let inner = ["\"\"\"", "'''", "\"", "'"]
        .iter()
        .find_map(|q| lit.strip_prefix(q).and_then(|s| s.strip_suffix(q)))
        .unwrap_or(lit);
    dedent(inner)
}

//! Cutting one file into units: tree-sitter definitions, or line windows.

use std::ops::Range;
use std::path::{Path, PathBuf};

use tree_sitter::{Node, Parser};

use crate::doc;
use crate::test_code::{is_rust_test_attribute, is_test_path, is_test_unit};
use crate::{Lang, Unit, UnitKind};

/// How [`chunk_file_with`] cuts a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Lines per window for files without a grammar (default 40).
    pub window_lines: usize,
    /// Lines shared by consecutive windows (default 10); must be below `window_lines`.
    pub window_overlap: usize,
    /// The most bytes of [`Unit::text`] (default 4096, about 1,000 tokens of code); longer text is
    /// cut at a line boundary and ends with a line `…`.
    pub max_text_bytes: usize,
    /// The most bytes of [`Unit::signature`] (default 300); longer ones end with `…`.
    pub max_signature_bytes: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            window_lines: 40,
            window_overlap: 10,
            max_text_bytes: 4096,
            max_signature_bytes: 300,
        }
    }
}

/// Why a file could not be chunked.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The grammar and the tree-sitter core were built for different ABI versions.
    #[error(
        "the {lang} grammar does not load into this tree-sitter ({source}); \
         align the tree-sitter and tree-sitter-{lang} versions in Cargo.toml"
    )]
    Grammar {
        lang: Lang,
        source: tree_sitter::LanguageError,
    },
    /// tree-sitter gave up on the file (it returns no tree only when cancelled or out of memory).
    #[error("{}: the {lang} parser returned no tree; the file is skipped", path.display())]
    Parse { path: PathBuf, lang: Lang },
    /// The window options cannot make progress.
    #[error(
        "window overlap {overlap} must be below the window size {lines}; \
         use e.g. 40 lines with overlap 10"
    )]
    Windows { lines: usize, overlap: usize },
}

/// Cuts `source`, the contents of `path`, into units with the default [`ChunkOptions`].
///
/// The language comes from the extension ([`Lang::detect`]). Files with a grammar give one unit per
/// function, method, class, struct, enum, trait, impl and interface (nested ones included), in
/// source order; a file with a grammar but no definitions, and every other text file, gives
/// overlapping line windows. An empty or blank file gives no units.
pub fn chunk_file(path: &Path, source: &str) -> Result<Vec<Unit>, ChunkError> {
    chunk_file_with(path, source, &ChunkOptions::default())
}

/// [`chunk_file`] with explicit options.
pub fn chunk_file_with(
    path: &Path,
    source: &str,
    opts: &ChunkOptions,
) -> Result<Vec<Unit>, ChunkError> {
    if opts.window_lines == 0 || opts.window_overlap >= opts.window_lines {
        return Err(ChunkError::Windows {
            lines: opts.window_lines,
            overlap: opts.window_overlap,
        });
    }
    let lang = Lang::detect(path, source);
    let Some(grammar) = lang.grammar() else {
        return Ok(windows(path, lang, source, opts));
    };
    let mut parser = Parser::new();
    parser
        .set_language(&grammar)
        .map_err(|source| ChunkError::Grammar { lang, source })?;
    let tree = parser
        .parse(source, None)
        .ok_or_else(|| ChunkError::Parse {
            path: path.to_path_buf(),
            lang,
        })?;
    let mut ex = Extractor {
        lang,
        src: source,
        path,
        opts,
        line_starts: std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        raw: Vec::new(),
        path_test: is_test_path(path),
    };
    ex.walk(tree.root_node());
    if ex.raw.is_empty() {
        return Ok(windows(path, lang, source, opts));
    }
    Ok(ex.finish())
}

/// Overlapping windows of `opts.window_lines` lines; windows with only blank lines are dropped.
fn windows(path: &Path, lang: Lang, source: &str, opts: &ChunkOptions) -> Vec<Unit> {
    let lines: Vec<&str> = source.lines().collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let step = opts.window_lines - opts.window_overlap;
    let test = is_test_path(path);
    let mut units = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let end = (start + opts.window_lines).min(lines.len());
        let window = &lines[start..end];
        if let Some(first) = window.iter().find(|l| !l.trim().is_empty()) {
            units.push(Unit {
                path: path.to_path_buf(),
                lang,
                kind: UnitKind::Window,
                name: name.clone(),
                parent: None,
                start_line: start + 1,
                end_line: end,
                doc_start_line: start + 1,
                signature: truncate_signature(first.trim(), opts.max_signature_bytes),
                doc: String::new(),
                text: truncate_text(&window.join("\n"), opts.max_text_bytes),
                test,
            });
        }
        if end == lines.len() {
            break;
        }
        start += step;
    }
    units
}

/// A definition found in the tree, before its text is assembled.
struct Raw {
    unit: Unit,
    /// Byte range of the unit's text: from the start of `doc_start_line` to the end of the node.
    text: Range<usize>,
    /// Byte range of the body, elided from the text of the enclosing container.
    body: Option<Range<usize>>,
    parent: Option<usize>,
}

/// What [`Extractor::classify`] recognised.
struct Def<'t> {
    kind: UnitKind,
    name: String,
    /// Overrides the enclosing unit's name (Go receivers, C++ `Class::method`).
    parent_name: Option<String>,
    /// The node whose preceding siblings hold the doc comment and attributes, and whose first
    /// significant token starts the signature (an `export` statement, a `template` declaration, a
    /// Python `decorated_definition`, or the definition itself).
    outer: Node<'t>,
    body: Option<Node<'t>>,
    /// Where the signature ends (the body's start, or the end of the definition).
    sig_end: usize,
}

struct Extractor<'a> {
    lang: Lang,
    src: &'a str,
    path: &'a Path,
    opts: &'a ChunkOptions,
    /// Byte offset where each line (0-based row) begins.
    line_starts: Vec<usize>,
    raw: Vec<Raw>,
    /// The whole file is test code by its path.
    path_test: bool,
}

impl<'a> Extractor<'a> {
    /// Depth-first, in source order, with an explicit stack (deep expression trees must not
    /// overflow the call stack). Each entry carries whether it is inside test code.
    fn walk(&mut self, root: Node<'_>) {
        let mut stack: Vec<(Node<'_>, Option<usize>, bool)> = vec![(root, None, self.path_test)];
        while let Some((node, parent, in_test)) = stack.pop() {
            let mut inner = parent;
            let mut inner_test = in_test || self.is_test_module(node);
            if let Some(def) = self.classify(node, parent) {
                let i = self.emit(def, parent, inner_test);
                inner = Some(i);
                inner_test = self.raw[i].unit.test;
            }
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            for child in children.into_iter().rev() {
                stack.push((child, inner, inner_test));
            }
        }
    }

    /// A Rust `mod` with `#[cfg(test)]` (or another test attribute) or named `tests`: everything
    /// in it is test code.
    fn is_test_module(&self, node: Node<'_>) -> bool {
        if self.lang != Lang::Rust || node.kind() != "mod_item" {
            return false;
        }
        if node
            .child_by_field_name("name")
            .is_some_and(|n| self.text(n) == "tests")
        {
            return true;
        }
        let mut cur = node.prev_sibling();
        while let Some(s) = cur {
            match s.kind() {
                "attribute_item" if is_rust_test_attribute(self.text(s)) => return true,
                "attribute_item" | "line_comment" | "block_comment" => cur = s.prev_sibling(),
                _ => break,
            }
        }
        false
    }

    fn text(&self, node: Node<'_>) -> &'a str {
        slice(self.src, node.byte_range())
    }

    fn parent_kind(&self, parent: Option<usize>) -> Option<UnitKind> {
        parent.map(|i| self.raw[i].unit.kind)
    }

    /// Function or method, by what encloses it.
    fn fn_kind(&self, parent: Option<usize>) -> UnitKind {
        match self.parent_kind(parent) {
            Some(k) if k.is_container() => UnitKind::Method,
            _ => UnitKind::Function,
        }
    }

    fn classify<'t>(&self, node: Node<'t>, parent: Option<usize>) -> Option<Def<'t>> {
        match self.lang {
            Lang::Python => self.classify_python(node, parent),
            Lang::Rust => self.classify_rust(node, parent),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => self.classify_js(node, parent),
            Lang::Go => self.classify_go(node),
            Lang::Java => self.classify_java(node),
            Lang::C | Lang::Cpp => self.classify_c(node, parent),
            Lang::Text => None,
        }
    }

    fn simple<'t>(&self, node: Node<'t>, kind: UnitKind) -> Option<Def<'t>> {
        let name = self.text(node.child_by_field_name("name")?).to_string();
        let body = node.child_by_field_name("body");
        Some(Def {
            kind,
            name,
            parent_name: None,
            outer: node,
            body,
            sig_end: body.map_or(node.end_byte(), |b| b.start_byte()),
        })
    }

    fn classify_python<'t>(&self, node: Node<'t>, parent: Option<usize>) -> Option<Def<'t>> {
        let kind = match node.kind() {
            "function_definition" => self.fn_kind(parent),
            "class_definition" => UnitKind::Class,
            _ => return None,
        };
        let mut def = self.simple(node, kind)?;
        if let Some(p) = node.parent().filter(|p| p.kind() == "decorated_definition") {
            def.outer = p;
        }
        Some(def)
    }

    fn classify_rust<'t>(&self, node: Node<'t>, parent: Option<usize>) -> Option<Def<'t>> {
        let kind = match node.kind() {
            "function_item" => self.fn_kind(parent),
            "function_signature_item" => self.fn_kind(parent),
            "struct_item" | "union_item" => UnitKind::Struct,
            "enum_item" => UnitKind::Enum,
            "trait_item" => UnitKind::Trait,
            "impl_item" => {
                let ty = node.child_by_field_name("type")?;
                let body = node.child_by_field_name("body");
                return Some(Def {
                    kind: UnitKind::Impl,
                    name: strip_generics(self.text(ty)).to_string(),
                    parent_name: None,
                    outer: node,
                    body,
                    sig_end: body.map_or(node.end_byte(), |b| b.start_byte()),
                });
            }
            _ => return None,
        };
        let mut def = self.simple(node, kind)?;
        if def
            .body
            .is_some_and(|b| b.kind() == "ordered_field_declaration_list")
        {
            // A tuple struct's fields are its signature: `pub struct Meters(pub f64);`.
            def.body = None;
            def.sig_end = node.end_byte();
        }
        Some(def)
    }

    fn classify_js<'t>(&self, node: Node<'t>, parent: Option<usize>) -> Option<Def<'t>> {
        let mut def = match node.kind() {
            "function_declaration" | "generator_function_declaration" => {
                self.simple(node, self.fn_kind(parent))?
            }
            "class_declaration" | "abstract_class_declaration" => {
                self.simple(node, UnitKind::Class)?
            }
            "interface_declaration" => self.simple(node, UnitKind::Interface)?,
            "enum_declaration" => self.simple(node, UnitKind::Enum)?,
            "method_definition" => self.simple(node, UnitKind::Method)?,
            // `const parse = (s) => { … }`, `let f = function () { … }`
            "variable_declarator" => {
                let name = node.child_by_field_name("name")?;
                let value = node.child_by_field_name("value")?;
                if name.kind() != "identifier" || !is_js_function(value.kind()) {
                    return None;
                }
                let body = value.child_by_field_name("body");
                let outer = node
                    .parent()
                    .filter(|p| {
                        matches!(p.kind(), "lexical_declaration" | "variable_declaration")
                            && p.named_child_count() == 1
                    })
                    .unwrap_or(node);
                Def {
                    kind: self.fn_kind(parent),
                    name: self.text(name).to_string(),
                    parent_name: None,
                    outer,
                    body,
                    sig_end: body.map_or(node.end_byte(), |b| b.start_byte()),
                }
            }
            // class fields holding functions: `handle = (e) => { … }`
            "field_definition" | "public_field_definition" => {
                let name = node
                    .child_by_field_name("property")
                    .or_else(|| node.child_by_field_name("name"))?;
                let value = node.child_by_field_name("value")?;
                if !is_js_function(value.kind()) {
                    return None;
                }
                let body = value.child_by_field_name("body");
                Def {
                    kind: UnitKind::Method,
                    name: self.text(name).to_string(),
                    parent_name: None,
                    outer: node,
                    body,
                    sig_end: body.map_or(node.end_byte(), |b| b.start_byte()),
                }
            }
            _ => return None,
        };
        if let Some(p) = def
            .outer
            .parent()
            .filter(|p| p.kind() == "export_statement")
        {
            def.outer = p;
        }
        Some(def)
    }

    fn classify_go<'t>(&self, node: Node<'t>) -> Option<Def<'t>> {
        match node.kind() {
            "function_declaration" => self.simple(node, UnitKind::Function),
            "method_declaration" => {
                let mut def = self.simple(node, UnitKind::Method)?;
                def.parent_name = node
                    .child_by_field_name("receiver")
                    .and_then(|r| r.named_child(0))
                    .and_then(|p| p.child_by_field_name("type"))
                    .map(|t| strip_generics(self.text(t).trim_start_matches('*')).to_string());
                Some(def)
            }
            "type_spec" => {
                let ty = node.child_by_field_name("type")?;
                let kind = match ty.kind() {
                    "struct_type" => UnitKind::Struct,
                    "interface_type" => UnitKind::Interface,
                    _ => return None,
                };
                let name = self.text(node.child_by_field_name("name")?).to_string();
                let mut cursor = ty.walk();
                let brace = ty
                    .children(&mut cursor)
                    .find(|c| matches!(c.kind(), "{" | "field_declaration_list"));
                // `type Foo struct {…}` alone: the doc sits above the `type` keyword; inside a
                // `type ( … )` group, above the spec.
                let outer = node
                    .parent()
                    .filter(|p| p.kind() == "type_declaration" && p.named_child_count() == 1)
                    .unwrap_or(node);
                Some(Def {
                    kind,
                    name,
                    parent_name: None,
                    outer,
                    body: Some(ty),
                    sig_end: brace.map_or(node.end_byte(), |b| b.start_byte()),
                })
            }
            _ => None,
        }
    }

    fn classify_java<'t>(&self, node: Node<'t>) -> Option<Def<'t>> {
        let kind = match node.kind() {
            "class_declaration" | "record_declaration" => UnitKind::Class,
            "interface_declaration" | "annotation_type_declaration" => UnitKind::Interface,
            "enum_declaration" => UnitKind::Enum,
            "method_declaration"
            | "constructor_declaration"
            | "compact_constructor_declaration" => UnitKind::Method,
            _ => return None,
        };
        self.simple(node, kind)
    }

    fn classify_c<'t>(&self, node: Node<'t>, parent: Option<usize>) -> Option<Def<'t>> {
        let mut def = match node.kind() {
            "function_definition" => {
                let declarator = node.child_by_field_name("declarator")?;
                let (name, scope) = self.c_declarator_name(declarator)?;
                let body = node.child_by_field_name("body");
                let kind = if scope.is_some() {
                    UnitKind::Method
                } else {
                    self.fn_kind(parent)
                };
                Def {
                    kind,
                    name,
                    parent_name: scope,
                    outer: node,
                    body,
                    sig_end: body.map_or(node.end_byte(), |b| b.start_byte()),
                }
            }
            "class_specifier" | "struct_specifier" | "union_specifier" | "enum_specifier" => {
                let body = node.child_by_field_name("body")?;
                let kind = match node.kind() {
                    "class_specifier" => UnitKind::Class,
                    "enum_specifier" => UnitKind::Enum,
                    _ => UnitKind::Struct,
                };
                let typedef = node.parent().filter(|p| p.kind() == "type_definition");
                let name = match node.child_by_field_name("name") {
                    Some(n) => self.text(n).to_string(),
                    // `typedef struct { … } Name;`
                    None => typedef
                        .and_then(|t| t.child_by_field_name("declarator"))
                        .map(|d| self.text(d).to_string())?,
                };
                let outer = node
                    .parent()
                    .filter(|p| matches!(p.kind(), "type_definition" | "declaration"))
                    .unwrap_or(node);
                Def {
                    kind,
                    name,
                    parent_name: None,
                    outer,
                    body: Some(body),
                    sig_end: body.start_byte(),
                }
            }
            _ => return None,
        };
        if let Some(t) = def
            .outer
            .parent()
            .filter(|p| p.kind() == "template_declaration")
        {
            def.outer = t;
        }
        Some(def)
    }

    /// The name a C/C++ declarator declares, and the scope of a qualified one (`Foo::bar` gives
    /// `("bar", Some("Foo"))`).
    fn c_declarator_name(&self, mut node: Node<'_>) -> Option<(String, Option<String>)> {
        for _ in 0..16 {
            match node.kind() {
                "identifier" | "field_identifier" | "destructor_name" | "operator_name"
                | "type_identifier" | "operator_cast" => {
                    return Some((self.text(node).to_string(), None));
                }
                "qualified_identifier" => {
                    let text = self.text(node);
                    let (scope, name) = split_scope(text);
                    return Some((
                        name.to_string(),
                        scope.map(|s| strip_generics(s).to_string()),
                    ));
                }
                _ => {
                    node = node
                        .child_by_field_name("declarator")
                        .or_else(|| node.named_child(0))?;
                }
            }
        }
        None
    }

    /// Turns a definition into a unit (text assembled later) and returns its index. `in_test`:
    /// it is inside test code.
    fn emit(&mut self, def: Def<'_>, parent: Option<usize>, in_test: bool) -> usize {
        let node_end = def.outer.end_byte();
        let end_line = last_row(def.outer) + 1;
        let sig_start = significant_start(def.outer);
        let start_line = sig_start.start_position().row + 1;

        let (mut doc, mut doc_row) = doc::leading(self.lang, def.outer, self.src);
        doc_row = doc_row.min(def.outer.start_position().row);
        if self.lang == Lang::Python {
            if let Some(body) = def.body {
                doc = doc::python_docstring(body, self.src);
            }
        }
        let sig_end = def.sig_end.max(sig_start.start_byte());
        let mut signature = signature(
            slice(self.src, sig_start.start_byte()..sig_end),
            self.lang,
            self.opts.max_signature_bytes,
        );
        if def.kind.is_container() && !signature.contains(def.name.as_str()) {
            // `typedef struct { … } Point;`: the name comes after the body
            signature.push(' ');
            signature.push_str(&def.name);
        }
        let text_start = self.line_starts.get(doc_row).copied().unwrap_or(0);
        let parent_name = def
            .parent_name
            .or_else(|| parent.map(|i| self.raw[i].unit.name.clone()));
        let test = in_test || {
            let head_start = self.line_starts.get(start_line - 1).copied().unwrap_or(0);
            let head_end = self
                .line_starts
                .get(start_line)
                .copied()
                .unwrap_or(self.src.len());
            let preamble = slice(self.src, text_start..head_start.max(text_start));
            let head = slice(self.src, head_start..head_end);
            is_test_unit(self.lang, def.kind, &def.name, preamble, head, &signature)
        };
        self.raw.push(Raw {
            unit: Unit {
                path: self.path.to_path_buf(),
                lang: self.lang,
                kind: def.kind,
                name: def.name,
                parent: parent_name,
                start_line,
                end_line,
                doc_start_line: doc_row + 1,
                signature,
                doc,
                text: String::new(),
                test,
            },
            text: text_start..node_end,
            body: def.body.map(|b| b.byte_range()),
            parent,
        });
        self.raw.len() - 1
    }

    /// Assembles each unit's text: containers get their own methods' bodies elided.
    fn finish(self) -> Vec<Unit> {
        let mut elide: Vec<Vec<Range<usize>>> = vec![Vec::new(); self.raw.len()];
        for r in &self.raw {
            if let (Some(p), Some(body)) = (r.parent, &r.body) {
                let fun = matches!(r.unit.kind, UnitKind::Method | UnitKind::Function);
                if fun && self.raw[p].unit.kind.is_container() {
                    elide[p].push(body.clone());
                }
            }
        }
        let placeholder = if self.lang == Lang::Python {
            "..."
        } else {
            "{ … }"
        };
        let mut units = Vec::with_capacity(self.raw.len());
        // Enough text to cut at a line boundary without assembling all of a huge class.
        let enough = self.opts.max_text_bytes.saturating_add(1);
        for (r, cuts) in self.raw.into_iter().zip(elide) {
            let mut text = String::new();
            let mut at = r.text.start;
            for cut in cuts {
                if text.len() >= enough {
                    break;
                }
                if cut.start < at || cut.end > r.text.end {
                    continue;
                }
                text.push_str(slice(self.src, at..cut.start));
                text.push_str(placeholder);
                at = cut.end;
            }
            if text.len() < enough {
                let rest = slice(self.src, at..r.text.end);
                let take = floor_char_boundary(rest, enough - text.len());
                text.push_str(&rest[..take]);
            }
            let mut unit = r.unit;
            unit.text = truncate_text(&text, self.opts.max_text_bytes);
            units.push(unit);
        }
        units
    }
}

fn is_js_function(kind: &str) -> bool {
    matches!(
        kind,
        "arrow_function" | "function_expression" | "function" | "generator_function"
    )
}

/// `Foo<T>` → `Foo`, `Map[K, V]` → `Map`.
fn strip_generics(s: &str) -> &str {
    let end = s.find(['<', '[']).unwrap_or(s.len());
    s[..end].trim()
}

/// `ns::Foo::bar` → (`Some("ns::Foo")`, `"bar"`), ignoring `::` inside template arguments.
fn split_scope(s: &str) -> (Option<&str>, &str) {
    let mut depth = 0i32;
    let bytes = s.as_bytes();
    let mut split = None;
    let mut i = 0;
    while i + 1 < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth == 0 && bytes[i + 1] == b':' => {
                split = Some(i);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    match split {
        Some(i) if i > 0 => (Some(&s[..i]), &s[i + 2..]),
        Some(i) => (None, &s[i + 2..]),
        None => (None, s),
    }
}

/// The last line a node occupies (0-based): a node that ends with its newline ends on the line
/// before.
pub(crate) fn last_row(node: Node<'_>) -> usize {
    let end = node.end_position();
    if end.column == 0 && end.row > node.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}

/// Kinds that come before a definition but are not part of its signature.
fn is_preamble(kind: &str) -> bool {
    matches!(
        kind,
        "decorator"
            | "annotation"
            | "marker_annotation"
            | "attribute_item"
            | "attribute_declaration"
            | "comment"
            | "line_comment"
            | "block_comment"
    )
}

/// The first token of a definition after its decorators, annotations and attributes (descending
/// into Java `modifiers` and Python `decorated_definition`).
fn significant_start(node: Node<'_>) -> Node<'_> {
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        if is_preamble(child.kind()) {
            continue;
        }
        if matches!(child.kind(), "modifiers" | "decorated_definition") {
            let inner = significant_start(child);
            if inner.id() != child.id() {
                return inner;
            }
            // modifiers made only of annotations: go on with the next child
            if child.kind() == "modifiers" {
                continue;
            }
        }
        return child;
    }
    node
}

/// Collapses whitespace, drops a trailing `:` (Python) or `{`, and caps the length.
fn signature(head: &str, lang: Lang, max: usize) -> String {
    let mut s = head.split_whitespace().collect::<Vec<_>>().join(" ");
    if lang == Lang::Python && s.ends_with(':') {
        s.pop();
    }
    while s.ends_with(['{', ';', ' ']) {
        s.pop();
    }
    let s = s.replace("( ", "(").replace(", )", ")").replace(" )", ")");
    truncate_signature(&s, max)
}

/// `src[range]`, with both ends moved down to character boundaries (tree-sitter counts bytes).
pub(crate) fn slice(src: &str, range: Range<usize>) -> &str {
    let end = floor_char_boundary(src, range.end);
    let start = floor_char_boundary(src, range.start.min(end));
    &src[start..end]
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn truncate_signature(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = floor_char_boundary(s, max);
    format!("{}…", s[..cut].trim_end())
}

/// Keeps whole lines up to `max` bytes; a cut text ends with a line `…`.
pub(crate) fn truncate_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = floor_char_boundary(s, max);
    let cut = match s[..cut].rfind('\n') {
        Some(nl) if nl > 0 => nl,
        _ => cut, // one long line: cut inside it
    };
    format!("{}\n…", &s[..cut])
}

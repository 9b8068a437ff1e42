//! The search unit: one function, method, type or line window of one file.

use std::fmt;
use std::path::PathBuf;

use crate::Lang;

/// What a [`Unit`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// A free function, including one nested inside another function.
    Function,
    /// A function that belongs to a class, impl, trait, interface or (Go) receiver type, including
    /// constructors.
    Method,
    /// A class (Python, JS/TS, Java, C++) or a Java record.
    Class,
    /// A struct or union (Rust, Go, C, C++).
    Struct,
    /// An enum (Rust, TS, Java, C, C++).
    Enum,
    /// A Rust trait.
    Trait,
    /// A Rust `impl` block.
    Impl,
    /// An interface (TS, Go, Java).
    Interface,
    /// A window of lines from a file with no grammar (or with no definitions in it).
    Window,
}

impl UnitKind {
    /// A short lower-case name: `function`, `method`, `class`, … `window`.
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Function => "function",
            UnitKind::Method => "method",
            UnitKind::Class => "class",
            UnitKind::Struct => "struct",
            UnitKind::Enum => "enum",
            UnitKind::Trait => "trait",
            UnitKind::Impl => "impl",
            UnitKind::Interface => "interface",
            UnitKind::Window => "window",
        }
    }

    /// Whether units of this kind contain methods (and get their method bodies elided in
    /// [`Unit::text`]).
    pub fn is_container(self) -> bool {
        matches!(
            self,
            UnitKind::Class
                | UnitKind::Struct
                | UnitKind::Enum
                | UnitKind::Trait
                | UnitKind::Impl
                | UnitKind::Interface
        )
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One search unit: what gets embedded, and what a hit points back to.
///
/// Lines are 1-based and inclusive. For a definition, `start_line` is the line where the definition
/// itself begins (its `def`/`fn`/`class`/modifiers, after any doc comment, attributes, decorators or
/// annotations), and `doc_start_line` is the first line of the doc comment and attributes that
/// belong to it (equal to `start_line` when there are none). Python docstrings sit inside the body,
/// so for Python `doc_start_line` only moves up for decorators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unit {
    /// The file, as given to [`chunk_file`](crate::chunk_file) (relative to the walked root when it
    /// comes from [`chunk_repo`](crate::chunk_repo)).
    pub path: PathBuf,
    pub lang: Lang,
    pub kind: UnitKind,
    /// The definition's name (`parse`, `Index`, `operator==`); for an impl, its self type; for a
    /// window, the file name.
    pub name: String,
    /// The name of the enclosing unit: the class, impl, trait or receiver type of a method, the
    /// function around a nested function, the class around a nested class.
    pub parent: Option<String>,
    pub start_line: usize,
    pub end_line: usize,
    pub doc_start_line: usize,
    /// The definition's head up to its body, whitespace collapsed to single spaces
    /// (`pub fn parse(src: &str) -> Result<Ast, Error>`, `class Index(Base)`); for a window, its first
    /// non-blank line.
    pub signature: String,
    /// The doc comment or docstring, markers (`///`, `/** */`, leading `*`, quotes) removed and
    /// dedented; empty when there is none.
    pub doc: String,
    /// What to embed: the source from `doc_start_line` to `end_line` (so the doc comment and the
    /// code), with the bodies of a class's own methods elided to `{ … }` (they are units of their
    /// own), cut at a line boundary to at most [`ChunkOptions::max_text_bytes`](crate::ChunkOptions).
    pub text: String,
    /// Test, benchmark or example code, by its path, its attributes or name, or what encloses it
    /// (the rules: [`is_test_path`](crate::is_test_path) and the crate docs).
    pub test: bool,
}

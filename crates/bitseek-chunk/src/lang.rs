//! Which language a file is in, decided by its extension.

use std::fmt;
use std::path::Path;

/// The language of a file, as far as chunking cares.
///
/// Every language except [`Lang::Text`] is parsed with its tree-sitter grammar; `Text` (Markdown,
/// TOML, YAML, JSON, shell, anything else that is not binary) is cut into overlapping line windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Python,
    Rust,
    JavaScript,
    TypeScript,
    /// TypeScript with JSX (`.tsx`), parsed with the TSX grammar.
    Tsx,
    Go,
    Java,
    C,
    Cpp,
    /// Any other text file: chunked into line windows.
    Text,
}

impl Lang {
    /// All languages with a grammar, in a fixed order.
    pub const PARSED: [Lang; 9] = [
        Lang::Python,
        Lang::Rust,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::Java,
        Lang::C,
        Lang::Cpp,
    ];

    /// The language of `path` from its extension alone (`Text` when unknown).
    ///
    /// `.h` headers are C here; [`Lang::detect`] also looks at the contents and moves C++ headers to
    /// [`Lang::Cpp`].
    pub fn from_path(path: &Path) -> Lang {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "py" | "pyi" => Lang::Python,
            "rs" => Lang::Rust,
            "js" | "jsx" | "mjs" | "cjs" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" | "tpp" => {
                Lang::Cpp
            }
            _ => Lang::Text,
        }
    }

    /// The language of `path`, looking at `source` where the extension is ambiguous: a `.h` header
    /// that declares a `class`, `namespace` or `template` is parsed as C++.
    pub fn detect(path: &Path, source: &str) -> Lang {
        let lang = Lang::from_path(path);
        if lang == Lang::C
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("h"))
            && looks_like_cpp(source)
        {
            return Lang::Cpp;
        }
        lang
    }

    /// A short lower-case name: `python`, `rust`, `javascript`, `typescript`, `tsx`, `go`, `java`,
    /// `c`, `cpp`, `text`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Text => "text",
        }
    }

    /// The tree-sitter grammar, or `None` for [`Lang::Text`].
    pub fn grammar(self) -> Option<tree_sitter::Language> {
        let f = match self {
            Lang::Python => tree_sitter_python::LANGUAGE,
            Lang::Rust => tree_sitter_rust::LANGUAGE,
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE,
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX,
            Lang::Go => tree_sitter_go::LANGUAGE,
            Lang::Java => tree_sitter_java::LANGUAGE,
            Lang::C => tree_sitter_c::LANGUAGE,
            Lang::Cpp => tree_sitter_cpp::LANGUAGE,
            Lang::Text => return None,
        };
        Some(f.into())
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn looks_like_cpp(source: &str) -> bool {
    source.lines().any(|line| {
        let t = line.trim_start();
        t.starts_with("namespace ")
            || t.starts_with("template <")
            || t.starts_with("template<")
            || t.starts_with("public:")
            || t.starts_with("private:")
            || t.starts_with("protected:")
            || (t.starts_with("class ") && !t.ends_with(';'))
    })
}

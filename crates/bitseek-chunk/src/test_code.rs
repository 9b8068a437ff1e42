//! Which units are test, benchmark or example code, so that search can rank them below library
//! code. Decided from the path first, then from the unit itself, then from what encloses it:
//!
//! - **path**: a directory named `test`, `tests`, `__tests__`, `spec`, `specs`, `bench`,
//!   `benches`, `benchmark`, `benchmarks`, `example`, `examples`, `testdata` or `fixtures`; or a
//!   file named `test_*.py`, `*_test.py`, `*_tests.py`, `tests.py`, `conftest.py`, `tests.rs`,
//!   `*_test.go`, `*.test.*` / `*.spec.*` (JavaScript, TypeScript), `*Test.java`, `*Tests.java`,
//!   `*_test.{c,cc,cpp}`, `*_unittest.{c,cc,cpp}`, `test_*.{c,cc,cpp}` ([`is_test_path`]);
//! - **the unit**: Rust items with a `#[test]`, `#[bench]`, `#[cfg(test)]` attribute or one whose
//!   last path segment is `test` (`#[tokio::test]`), `test_case` or `rstest`; Python functions
//!   named `test` or `test_*` and classes named `Test*` or deriving from a `TestCase`; Go
//!   functions named `Test*`, `Benchmark*`, `Fuzz*`, `Example*` taking `*testing.T`/`B`/`F` or
//!   nothing; Java methods annotated `@Test` (or `@ParameterizedTest`, `@RepeatedTest`);
//! - **what encloses it**: everything inside a test unit, and in Rust everything inside a `mod`
//!   with `#[cfg(test)]` or named `tests`.
//!
//! Names alone are not enough for Rust (`fn test_bit` is often library code), so Rust needs an
//! attribute or a test module.

use std::path::Path;

use crate::{Lang, UnitKind};

/// Directory names whose files are test, benchmark or example code.
pub const TEST_DIRS: [&str; 13] = [
    "test",
    "tests",
    "__tests__",
    "spec",
    "specs",
    "bench",
    "benches",
    "benchmark",
    "benchmarks",
    "example",
    "examples",
    "testdata",
    "fixtures",
];

/// Whether a file (a path relative to the indexed root, or just its name) holds test,
/// benchmark or example code by its path alone: see the module docs for the rules.
pub fn is_test_path(path: &Path) -> bool {
    let mut parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_ascii_lowercase())
        .collect();
    let Some(file) = parts.pop() else {
        return false;
    };
    if parts.iter().any(|d| TEST_DIRS.contains(&d.as_str())) {
        return true;
    }
    // Java's conventions are case-sensitive (`FooTest.java`); take the name as written.
    let written = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match file.rsplit_once('.') {
        Some((s, e)) => (s, e),
        None => (file.as_str(), ""),
    };
    match ext {
        "py" => {
            stem.starts_with("test_")
                || stem.ends_with("_test")
                || stem.ends_with("_tests")
                || matches!(stem, "tests" | "conftest")
        }
        "rs" => stem == "tests",
        "go" => stem.ends_with("_test"),
        "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" => {
            stem.ends_with(".test") || stem.ends_with(".spec")
        }
        "java" => {
            let stem = written.trim_end_matches(".java");
            stem.ends_with("Test") || stem.ends_with("Tests") || stem.ends_with("IT")
        }
        "c" | "cc" | "cpp" | "cxx" => {
            stem.starts_with("test_") || stem.ends_with("_test") || stem.ends_with("_unittest")
        }
        _ => false,
    }
}

/// Whether a unit is test code by itself (see the module docs). `preamble` is the unit's text
/// above its definition line (doc comment and attributes), `head` the first line of the
/// definition.
pub(crate) fn is_test_unit(
    lang: Lang,
    kind: UnitKind,
    name: &str,
    preamble: &str,
    head: &str,
    signature: &str,
) -> bool {
    match lang {
        Lang::Rust => preamble.lines().any(is_rust_test_attribute),
        Lang::Python => match kind {
            UnitKind::Function | UnitKind::Method => name == "test" || name.starts_with("test_"),
            UnitKind::Class => {
                name.starts_with("Test")
                    || signature
                        .split_once('(')
                        .is_some_and(|(_, bases)| bases.contains("TestCase"))
            }
            _ => false,
        },
        Lang::Go => {
            kind == UnitKind::Function
                && ["Test", "Benchmark", "Fuzz", "Example"]
                    .iter()
                    .any(|p| name.starts_with(p))
                && (signature.contains("*testing.") || signature.contains(&format!("{name}()")))
        }
        Lang::Java => preamble.lines().chain(std::iter::once(head)).any(|l| {
            let l = l.trim_start();
            ["@Test", "@ParameterizedTest", "@RepeatedTest"]
                .iter()
                .any(|a| {
                    l.strip_prefix(a)
                        .is_some_and(|rest| !rest.starts_with(char::is_alphanumeric))
                })
        }),
        _ => false,
    }
}

/// Whether a line is a Rust attribute that marks a test: `#[test]`, `#[bench]`, `#[cfg(test)]`,
/// or an attribute whose path ends in `test`, `test_case` or `rstest` (`#[tokio::test(...)]`).
pub(crate) fn is_rust_test_attribute(line: &str) -> bool {
    let Some(inner) = line.trim().strip_prefix("#[") else {
        return false;
    };
    let inner: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    if inner.starts_with("cfg(test)") {
        return true;
    }
    let path_end = inner.find(['(', ']', '=']).unwrap_or(inner.len());
    let last = inner[..path_end].rsplit("::").next().unwrap_or("");
    matches!(last, "test" | "bench" | "test_case" | "rstest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for p in [
            "tests/api.rs",
            "crates/x/benches/kernels.rs",
            "examples/demo.py",
            "pkg/test_parse.py",
            "pkg/parse_test.py",
            "conftest.py",
            "src/foo/tests.rs",
            "net/http_test.go",
            "src/app.test.ts",
            "src/app.spec.js",
            "src/FooTest.java",
            "lib/__tests__/x.js",
            "src/parse_unittest.cc",
        ] {
            assert!(is_test_path(Path::new(p)), "{p}");
        }
        for p in [
            "src/lib.rs",
            "src/testing.rs",
            "numpy/testing/utils.py",
            "src/contest.py",
            "src/attest.go",
            "src/Testable.java",
            "latest/x.py",
            "src/test_utils.rs",
        ] {
            assert!(!is_test_path(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn rust_attributes() {
        for a in [
            "#[test]",
            "  #[ test ]",
            "#[bench]",
            "#[cfg(test)]",
            "#[tokio::test]",
            "#[tokio::test(flavor = \"multi_thread\")]",
            "#[test_case(1, 2)]",
            "#[rstest]",
        ] {
            assert!(is_rust_test_attribute(a), "{a}");
        }
        for a in [
            "#[inline]",
            "#[cfg(feature = \"test\")]",
            "#[testing]",
            "/// #[test]",
            "#[derive(Debug)]",
        ] {
            assert!(!is_rust_test_attribute(a), "{a}");
        }
    }

    #[test]
    fn units_by_language() {
        let f = UnitKind::Function;
        assert!(is_test_unit(
            Lang::Rust,
            f,
            "x",
            "/// d\n#[test]",
            "fn x() {",
            "fn x()"
        ));
        assert!(!is_test_unit(
            Lang::Rust,
            f,
            "test_bit",
            "#[inline]",
            "fn test_bit() {",
            "fn test_bit()"
        ));
        assert!(is_test_unit(
            Lang::Python,
            f,
            "test_parse",
            "",
            "",
            "def test_parse()"
        ));
        assert!(!is_test_unit(
            Lang::Python,
            f,
            "attest",
            "",
            "",
            "def attest()"
        ));
        let c = UnitKind::Class;
        assert!(is_test_unit(
            Lang::Python,
            c,
            "ParserCase",
            "",
            "",
            "class ParserCase(unittest.TestCase)"
        ));
        assert!(is_test_unit(
            Lang::Python,
            c,
            "TestParser",
            "",
            "",
            "class TestParser"
        ));
        let go = "func TestParse(t *testing.T)";
        assert!(is_test_unit(Lang::Go, f, "TestParse", "", go, go));
        assert!(!is_test_unit(
            Lang::Go,
            f,
            "Testify",
            "",
            "func Testify(x int)",
            "func Testify(x int)"
        ));
        let m = UnitKind::Method;
        assert!(is_test_unit(
            Lang::Java,
            m,
            "parses",
            "@Test",
            "void parses() {",
            "void parses()"
        ));
        assert!(!is_test_unit(
            Lang::Java,
            m,
            "parses",
            "@Testable",
            "void parses() {",
            "void parses()"
        ));
    }
}

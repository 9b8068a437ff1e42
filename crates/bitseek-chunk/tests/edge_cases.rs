//! Inputs that are easy to get wrong: broken code, CRLF, non-ASCII, unusual definitions.

use std::path::Path;

use bitseek_chunk::{chunk_file, Lang, Unit, UnitKind};

fn names(units: &[Unit]) -> Vec<(UnitKind, &str, Option<&str>)> {
    units
        .iter()
        .map(|u| (u.kind, u.name.as_str(), u.parent.as_deref()))
        .collect()
}

#[test]
fn syntax_errors_still_give_the_intact_definitions() {
    let src = "def ok():\n    return 1\n\ndef broken(:\n    pass\n\nclass C:\n    def m(self):\n        pass\n";
    let units = chunk_file(Path::new("bad.py"), src).unwrap();
    let got = names(&units);
    assert!(got.contains(&(UnitKind::Function, "ok", None)), "{got:?}");
    assert!(got.contains(&(UnitKind::Method, "m", Some("C"))), "{got:?}");
}

#[test]
fn crlf_and_non_ascii() {
    let src = "/// Größe in Bytes — ≥ 0.\r\nfn größe() -> usize {\r\n    0 // ✓\r\n}\r\n";
    let units = chunk_file(Path::new("u.rs"), src).unwrap();
    assert_eq!(units.len(), 1);
    let u = &units[0];
    assert_eq!(
        (u.name.as_str(), u.doc_start_line, u.start_line, u.end_line),
        ("größe", 1, 2, 4)
    );
    assert_eq!(u.doc, "Größe in Bytes — ≥ 0.");
    assert_eq!(u.signature, "fn größe() -> usize");
}

#[test]
fn rust_doc_attributes_inner_docs_and_plain_comments() {
    let src = r##"//! crate docs
fn first() {}

#[doc = r#"Raw "quoted" doc."#]
#[must_use]
fn raw() -> u8 { 0 }

// just a comment
fn plain() {}

/// Doc through a blank line.

fn spaced() {}

mod inner {
    impl<T: Clone> super::Wrapper<T> {
        pub(crate) async unsafe fn go(&self) {}
    }
}
"##;
    let units = chunk_file(Path::new("a.rs"), src).unwrap();
    let by = |n: &str| units.iter().find(|u| u.name == n).unwrap();
    assert_eq!(by("first").doc, "");
    assert_eq!(by("raw").doc, "Raw \"quoted\" doc.");
    assert_eq!((by("raw").doc_start_line, by("raw").start_line), (4, 6));
    assert_eq!(by("plain").doc, "");
    assert_eq!(by("spaced").doc, "Doc through a blank line.");
    let go = by("go");
    assert_eq!(
        (go.kind, go.parent.as_deref()),
        (UnitKind::Method, Some("super::Wrapper"))
    );
    assert_eq!(go.signature, "pub(crate) async unsafe fn go(&self)");
    assert_eq!(
        by("super::Wrapper").signature,
        "impl<T: Clone> super::Wrapper<T>"
    );
}

#[test]
fn python_decorated_class_async_def_and_raw_docstring() {
    let src = "@dataclass\nclass P:\n    r'''Point.\n\n    Two floats.\n    '''\n    async def load(self):\n        \"One line.\"\n        pass\n";
    let units = chunk_file(Path::new("p.py"), src).unwrap();
    assert_eq!(
        names(&units),
        [
            (UnitKind::Class, "P", None),
            (UnitKind::Method, "load", Some("P"))
        ]
    );
    assert_eq!(
        (
            units[0].doc_start_line,
            units[0].start_line,
            units[0].end_line
        ),
        (1, 2, 9)
    );
    assert_eq!(units[0].doc, "Point.\n\nTwo floats.");
    assert_eq!(units[1].signature, "async def load(self)");
    assert_eq!(units[1].doc, "One line.");
}

#[test]
fn go_grouped_types_and_generic_receivers() {
    let src = "package p\n\ntype (\n\t// A is a.\n\tA struct{}\n\t// B is b.\n\tB interface{ M() }\n)\n\n// Push adds.\nfunc (s *Stack[T]) Push(v T) {}\n";
    let units = chunk_file(Path::new("p.go"), src).unwrap();
    assert_eq!(
        names(&units),
        [
            (UnitKind::Struct, "A", None),
            (UnitKind::Interface, "B", None),
            (UnitKind::Method, "Push", Some("Stack"))
        ]
    );
    assert_eq!(
        (units[0].doc.as_str(), units[0].doc_start_line),
        ("A is a.", 4)
    );
    assert_eq!(units[1].doc, "B is b.");
    assert_eq!(units[0].signature, "A struct");
}

#[test]
fn cpp_operators_destructors_and_templates_out_of_line() {
    let src = "template <typename T>\nBox<T>::~Box() {}\n\nbool operator==(const A& a, const A& b) { return true; }\n\nnamespace n { struct S { S& operator+=(int) { return *this; } }; }\n";
    let units = chunk_file(Path::new("a.cc"), src).unwrap();
    assert_eq!(
        names(&units),
        [
            (UnitKind::Method, "~Box", Some("Box")),
            (UnitKind::Function, "operator==", None),
            (UnitKind::Struct, "S", None),
            (UnitKind::Method, "operator+=", Some("S"))
        ]
    );
    assert_eq!(units[0].start_line, 1); // the template line belongs to the definition
}

#[test]
fn js_object_methods_exports_and_generators() {
    let src = "export default class {\n  m() {}\n}\n\nconst api = {\n  /** Gets. */\n  get(id) { return id; },\n};\n\nfunction* ids() { yield 1; }\n";
    let units = chunk_file(Path::new("a.js"), src).unwrap();
    let got = names(&units);
    assert!(got.contains(&(UnitKind::Method, "get", None)), "{got:?}");
    assert!(got.contains(&(UnitKind::Function, "ids", None)), "{got:?}");
    let get = units.iter().find(|u| u.name == "get").unwrap();
    assert_eq!(
        (get.doc.as_str(), get.doc_start_line, get.start_line),
        ("Gets.", 6, 7)
    );
}

#[test]
fn units_serialize_to_json() {
    let units = chunk_file(Path::new("src/a.rs"), "/// Doc.\nfn f() {}\n").unwrap();
    let v = serde_json::to_value(&units[0]).unwrap();
    assert_eq!(v["path"], "src/a.rs");
    assert_eq!(v["lang"], "rust");
    assert_eq!(v["kind"], "function");
    assert_eq!(v["parent"], serde_json::Value::Null);
    assert_eq!(v["doc"], "Doc.");
    assert_eq!(Lang::Cpp.to_string(), "cpp");
    assert_eq!(
        serde_json::to_value(Lang::JavaScript).unwrap(),
        serde_json::json!(Lang::JavaScript.name())
    );
}

#[test]
fn jsdoc_attaches_through_blank_lines_but_not_headers_or_licences() {
    let src = "/** Module header: helpers for parsing. */\n\nfunction first() {}\n\n/**\n * Parses a port.\n */\n\nexport function port(s) { return +s; }\n\n/** @license MIT */\nfunction licensed() {}\n\nclass C {\n  /** Opens it. */\n\n  open() {}\n}\n";
    for path in ["a.js", "a.ts"] {
        let units = chunk_file(Path::new(path), src).unwrap();
        let by = |n: &str| units.iter().find(|u| u.name == n).unwrap();
        assert_eq!(
            by("first").doc,
            "",
            "{path}: the file's header is not first's doc"
        );
        assert_eq!(
            (by("port").doc.as_str(), by("port").doc_start_line),
            ("Parses a port.", 5),
            "{path}"
        );
        assert_eq!(by("licensed").doc, "", "{path}: a licence is not a doc");
        assert_eq!(by("open").doc, "Opens it.", "{path}");
    }
    // Adjacent, the file's first comment is the first function's doc.
    let units = chunk_file(Path::new("b.js"), "/** Adds. */\nfunction add() {}\n").unwrap();
    assert_eq!(units[0].doc, "Adds.");
}

//! One fixture per language: names, kinds, parents, exact lines, signatures and docs.

use std::path::Path;

use bitseek_chunk::{chunk_file, Lang, Unit, UnitKind};
use UnitKind::*;

fn chunk(name: &str, source: &str) -> Vec<Unit> {
    let units = chunk_file(Path::new(name), source).expect("chunks");
    let lines = source.lines().count();
    for u in &units {
        assert_eq!(u.path, Path::new(name));
        assert!(u.doc_start_line <= u.start_line, "{u:?}");
        assert!(u.start_line <= u.end_line && u.end_line <= lines, "{u:?}");
    }
    units
}

/// (kind, name, parent, doc_start_line, start_line, end_line, signature, doc)
type Expected<'a> = (
    UnitKind,
    &'a str,
    Option<&'a str>,
    usize,
    usize,
    usize,
    &'a str,
    &'a str,
);

fn check(units: &[Unit], lang: Lang, expected: &[Expected<'_>]) {
    let got: Vec<Expected<'_>> = units
        .iter()
        .map(|u| {
            assert_eq!(u.lang, lang, "{u:?}");
            (
                u.kind,
                u.name.as_str(),
                u.parent.as_deref(),
                u.doc_start_line,
                u.start_line,
                u.end_line,
                u.signature.as_str(),
                u.doc.as_str(),
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e);
    }
}

fn text_of<'a>(units: &'a [Unit], name: &str) -> &'a str {
    &units
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no unit {name}"))
        .text
}

#[test]
fn python() {
    let units = chunk("pkg/sample.py", include_str!("fixtures/sample.py"));
    check(
        &units,
        Lang::Python,
        &[
            (
                Function,
                "parse_config",
                None,
                6,
                6,
                13,
                "def parse_config(path, strict=False)",
                "Read a config file.\n\nReturns a dict of settings.",
            ),
            (
                Function,
                "helper",
                Some("parse_config"),
                11,
                11,
                12,
                "def helper(line)",
                "",
            ),
            (
                Class,
                "Store",
                None,
                16,
                16,
                25,
                "class Store(Base)",
                "A key-value store.",
            ),
            (
                Method,
                "open",
                Some("Store"),
                19,
                20,
                22,
                "def open(path: str) -> \"Store\"",
                "Open the store at *path*.",
            ),
            (
                Method,
                "get",
                Some("Store"),
                24,
                24,
                25,
                "def get(self, key)",
                "",
            ),
        ],
    );
    // the class's text keeps its docstring and method heads, not the method bodies
    let store = text_of(&units, "Store");
    assert!(store.contains("\"\"\"A key-value store.\"\"\""));
    assert!(store.contains("    def get(self, key):\n        ..."));
    assert!(!store.contains("self.data[key]"));
    // a function's text is doc + code, nested functions included
    assert!(text_of(&units, "parse_config").contains("return line.strip()"));
    assert!(text_of(&units, "open").starts_with("    @staticmethod\n    def open"));
}

#[test]
fn rust() {
    let units = chunk("src/sample.rs", include_str!("fixtures/sample.rs"));
    check(
        &units,
        Lang::Rust,
        &[
            (
                Function,
                "add",
                None,
                5,
                9,
                14,
                "pub fn add(a: u32, b: u32) -> u32",
                "Adds two numbers.\n\nWraps on overflow.",
            ),
            (
                Function,
                "inner",
                Some("add"),
                10,
                10,
                12,
                "fn inner(x: u32) -> u32",
                "",
            ),
            (
                Struct,
                "Counter",
                None,
                16,
                18,
                20,
                "pub struct Counter",
                "A counter of words.",
            ),
            (
                Impl,
                "Counter",
                None,
                22,
                23,
                30,
                "impl Counter",
                "Counting.",
            ),
            (
                Method,
                "bump",
                Some("Counter"),
                24,
                25,
                29,
                "pub fn bump(&mut self, word: &str) -> usize",
                "Counts one word.",
            ),
            (
                Trait,
                "Countable",
                None,
                32,
                33,
                36,
                "pub trait Countable",
                "Things that can be counted.",
            ),
            (
                Method,
                "count",
                Some("Countable"),
                34,
                35,
                35,
                "fn count(&self) -> usize",
                "How many.",
            ),
            (
                Struct,
                "Meters",
                None,
                38,
                38,
                38,
                "pub struct Meters(pub f64)",
                "",
            ),
        ],
    );
    assert!(text_of(&units, "add").starts_with("/// Adds two numbers.\n"));
    let counter = text_of(&units, "Counter"); // the struct, first of the two
    assert!(counter.starts_with("/** A counter of words. */\n#[derive(Debug, Default)]"));
}

#[test]
fn javascript() {
    let units = chunk("web/sample.js", include_str!("fixtures/sample.js"));
    check(
        &units,
        Lang::JavaScript,
        &[
            (
                Function,
                "parseLine",
                None,
                4,
                8,
                13,
                "export function parseLine(line)",
                "Parses a line.\n@param {string} line",
            ),
            (
                Function,
                "trim",
                Some("parseLine"),
                9,
                9,
                11,
                "function trim(s)",
                "",
            ),
            (
                Class,
                "Queue",
                None,
                15,
                16,
                25,
                "class Queue",
                "A queue of jobs.",
            ),
            (
                Method,
                "push",
                Some("Queue"),
                17,
                18,
                20,
                "push(job)",
                "Adds a job.",
            ),
            (
                Method,
                "handle",
                Some("Queue"),
                22,
                22,
                24,
                "handle = (e) =>",
                "",
            ),
            (
                Function,
                "double",
                None,
                27,
                28,
                30,
                "const double = (x) =>",
                "Doubles x.",
            ),
        ],
    );
    assert_eq!(
        text_of(&units, "Queue"),
        "/** A queue of jobs. */\nclass Queue {\n  /** Adds a job. */\n  push(job) { … }\n\n  handle = (e) => { … };\n}"
    );
    // jsx, mjs and cjs use the same grammar
    for name in ["a.jsx", "a.mjs", "a.cjs"] {
        let units = chunk_file(Path::new(name), "function f() {}\n").unwrap();
        assert_eq!((units[0].lang, units[0].kind), (Lang::JavaScript, Function));
    }
}

#[test]
fn typescript() {
    let units = chunk("web/sample.ts", include_str!("fixtures/sample.ts"));
    check(
        &units,
        Lang::TypeScript,
        &[
            (
                Interface,
                "SearchOptions",
                None,
                1,
                2,
                4,
                "export interface SearchOptions",
                "Options for a search.",
            ),
            (
                Function,
                "search",
                None,
                6,
                9,
                14,
                "export async function search(q: string, opts: SearchOptions): Promise<string[]>",
                "Runs a search.",
            ),
            (
                Function,
                "score",
                Some("search"),
                10,
                10,
                12,
                "const score = (s: string): number =>",
                "",
            ),
            (
                Class,
                "Index",
                None,
                16,
                17,
                23,
                "export class Index<T>",
                "An index.",
            ),
            (
                Method,
                "add",
                Some("Index"),
                18,
                20,
                22,
                "add(item: T): void",
                "Adds an item.",
            ),
            (Enum, "Mode", None, 25, 25, 28, "export enum Mode", ""),
        ],
    );
    let tsx = chunk_file(
        Path::new("ui/App.tsx"),
        "/** The app. */\nexport function App() {\n  return <div>hi</div>;\n}\n",
    )
    .unwrap();
    assert_eq!(tsx.len(), 1);
    assert_eq!(
        (
            tsx[0].lang,
            tsx[0].kind,
            tsx[0].name.as_str(),
            tsx[0].doc.as_str()
        ),
        (Lang::Tsx, Function, "App", "The app.")
    );
    assert_eq!((tsx[0].start_line, tsx[0].end_line), (2, 4));
}

#[test]
fn go() {
    let units = chunk("store/sample.go", include_str!("fixtures/sample.go"));
    check(
        &units,
        Lang::Go,
        &[
            (
                Struct,
                "Store",
                None,
                5,
                7,
                9,
                "type Store struct",
                "Store keeps values by key.\nIt is not safe for concurrent use.",
            ),
            (
                Method,
                "Get",
                Some("Store"),
                11,
                12,
                15,
                "func (s *Store) Get(key string) (string, bool)",
                "Get returns the value for key.",
            ),
            // the trailing comment on line 17 is not helper's doc
            (Function, "helper", None, 19, 19, 22, "func helper()", ""),
            (
                Interface,
                "Greeter",
                None,
                24,
                25,
                27,
                "type Greeter interface",
                "Greeter greets.",
            ),
            (
                Function,
                "New",
                None,
                29,
                30,
                33,
                "func New() *Store",
                "New makes a store.",
            ),
        ],
    );
}

#[test]
fn java() {
    let units = chunk("src/Sample.java", include_str!("fixtures/Sample.java"));
    check(
        &units,
        Lang::Java,
        &[
            (
                Class,
                "Account",
                None,
                5,
                8,
                30,
                "public class Account",
                "A bank account.",
            ),
            (
                Method,
                "deposit",
                Some("Account"),
                11,
                16,
                18,
                "public void deposit(long amount)",
                "Deposits money.\n@param amount cents",
            ),
            (
                Method,
                "Account",
                Some("Account"),
                20,
                20,
                22,
                "public Account(long start)",
                "",
            ),
            (
                Class,
                "Entry",
                Some("Account"),
                24,
                25,
                29,
                "static class Entry",
                "An entry in the ledger.",
            ),
            (
                Method,
                "value",
                Some("Entry"),
                26,
                26,
                28,
                "int value()",
                "",
            ),
            (Interface, "Named", None, 32, 32, 34, "interface Named", ""),
            (
                Method,
                "name",
                Some("Named"),
                33,
                33,
                33,
                "String name()",
                "",
            ),
        ],
    );
    // the annotation sits between the Javadoc and the signature
    assert!(text_of(&units, "deposit").contains("     */\n    @Override\n    public void"));
}

#[test]
fn c() {
    let units = chunk("src/sample.c", include_str!("fixtures/sample.c"));
    check(
        &units,
        Lang::C,
        &[
            // `/* trailing */` on line 3 belongs to `counter`, not to `add`
            (
                Function,
                "add",
                None,
                4,
                5,
                7,
                "static int add(int a, int b)",
                "Adds two ints.",
            ),
            (
                Struct,
                "Point",
                None,
                9,
                11,
                14,
                "typedef struct Point",
                "A point.\nIn pixels.",
            ),
            (Struct, "node", None, 16, 16, 18, "struct node", ""),
            (
                Function,
                "name_of",
                None,
                20,
                20,
                23,
                "char *name_of(struct node *n)",
                "",
            ),
        ],
    );
}

#[test]
fn cpp() {
    let units = chunk("src/sample.cpp", include_str!("fixtures/sample.cpp"));
    check(
        &units,
        Lang::Cpp,
        &[
            (
                Class,
                "Shape",
                None,
                5,
                6,
                12,
                "class Shape",
                "A shape with an area.",
            ),
            (
                Method,
                "area",
                Some("Shape"),
                8,
                9,
                9,
                "virtual double area() const",
                "The area.",
            ),
            // defined out of line: `Shape::sides`
            (
                Method,
                "sides",
                Some("Shape"),
                14,
                15,
                17,
                "int Shape::sides() const",
                "Counts sides.",
            ),
            (
                Function,
                "sum",
                None,
                19,
                20,
                25,
                "template <typename T> T sum(const std::vector<T>& xs)",
                "Sums anything.",
            ),
            (Struct, "Pair", None, 27, 27, 29, "struct Pair", ""),
        ],
    );
    assert!(text_of(&units, "Shape").contains("virtual double area() const { … }"));
    // a C++ header with a .h extension is parsed as C++
    let h = chunk_file(
        Path::new("x.h"),
        "namespace a {\nclass B {\n  int f() { return 1; }\n};\n}\n",
    )
    .unwrap();
    assert_eq!(
        h.iter().map(|u| (u.lang, u.kind)).collect::<Vec<_>>(),
        [(Lang::Cpp, Class), (Lang::Cpp, Method)]
    );
}

//! Which units are marked as test code: by path, by attribute or name, and by what encloses them.

use bitseek_chunk::{chunk_file, Unit};
use std::path::Path;

fn tests_of(path: &str, source: &str) -> Vec<(String, bool)> {
    chunk_file(Path::new(path), source)
        .unwrap()
        .into_iter()
        .map(|u: Unit| (u.name, u.test))
        .collect()
}

#[test]
fn rust_test_attributes_and_test_modules() {
    let src = r#"
/// Wakes one waiter.
pub fn notify_one() {}

#[inline]
fn test_bit(x: u8) -> bool { x & 1 == 1 }

#[tokio::test]
async fn notify_one_wakes() { notify_one(); }

#[cfg(test)]
mod checks {
    fn helper() {}
    struct Fixture;
}

mod tests {
    fn plain() {}
}

#[cfg(test)]
impl Waiter {
    fn fake() {}
}
"#;
    let got = tests_of("src/notify.rs", src);
    let want = [
        ("notify_one", false),
        ("test_bit", false),
        ("notify_one_wakes", true),
        ("helper", true),
        ("Fixture", true),
        ("plain", true),
        ("Waiter", true),
        ("fake", true),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    assert_eq!(got, want);
}

#[test]
fn python_names_and_test_case_classes() {
    let src = "def parse(s):\n    return s\n\ndef test_parse():\n    assert parse('a')\n\nclass ParserTests(unittest.TestCase):\n    def check(self):\n        pass\n\nclass Parser:\n    def test(self):\n        pass\n    def run(self):\n        pass\n";
    let got = tests_of("pkg/parse.py", src);
    let flags: Vec<bool> = got.iter().map(|g| g.1).collect();
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "parse",
            "test_parse",
            "ParserTests",
            "check",
            "Parser",
            "test",
            "run"
        ]
    );
    assert_eq!(flags, [false, true, true, true, false, true, false]);
}

#[test]
fn paths_mark_every_unit_including_windows() {
    assert!(tests_of("tests/api.rs", "fn a() {}\nfn b() {}\n")
        .iter()
        .all(|u| u.1));
    assert!(tests_of("examples/demo.md", "# Demo\n\nRun it.\n")
        .iter()
        .all(|u| u.1));
    assert!(tests_of("src/lib.rs", "fn a() {}\n").iter().all(|u| !u.1));
}

//! Shared by the code-search API and browser tests: small repositories indexed with the tiny
//! random model (its vectors rank nothing; the lexical leg finds names), and a server over them.

use bitseek_server::{AppState, CodeRepos, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A unit whose signature and code carry markup that would run if the page inserted it as HTML.
pub const HOSTILE_PY: &str = r#"def render_banner(title="<img src=x onerror=document.body.setAttribute('data-pwned','1')>"):
    """Returns the banner markup <b>bold</b>."""
    return "<script>document.body.setAttribute('data-pwned', '2')</script>" + title
"#;

/// `hash_file` on lines 2-5 (its doc comment on line 1), `long_function` of 30 lines after it.
pub fn files_rs() -> String {
    let mut s = String::from(
        "/// Reads a file and hashes its bytes.\npub fn hash_file(path: &str) -> u64 {\n    let bytes = std::fs::read(path).unwrap();\n    bytes.len() as u64\n}\n\npub fn long_function() -> u32 {\n",
    );
    for i in 0..28 {
        s.push_str(&format!("    let v{i} = {i};\n"));
    }
    s.push_str("    0\n}\n");
    s
}

pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Two repositories (`web-app` and `tools`) under one temporary directory, with the tiny model in
/// `model/`. Not yet indexed.
pub struct Repos {
    pub tmp: tempfile::TempDir,
}

impl Repos {
    pub fn new() -> Repos {
        let tmp = tempfile::tempdir().unwrap();
        let r = Repos { tmp };
        bitseek_codesearch::testing::write_tiny_model(&r.model(), 2).unwrap();
        let web = r.web();
        write(&web, "src/files.rs", &files_rs());
        write(&web, "src/render.py", HOSTILE_PY);
        write(
            &web,
            "src/store.py",
            "def read_config(path):\n    \"\"\"Reads the settings.\"\"\"\n    return open(path).read()\n",
        );
        write(
            &r.tools(),
            "tool.py",
            "def hash_file_quickly(path):\n    return hash(open(path).read())\n",
        );
        r
    }

    pub fn model(&self) -> PathBuf {
        self.tmp.path().join("model")
    }

    pub fn web(&self) -> PathBuf {
        self.tmp.path().join("web-app")
    }

    pub fn tools(&self) -> PathBuf {
        self.tmp.path().join("tools")
    }

    /// Builds (or updates) `root`'s index as `bitseek index` does.
    pub fn index(&self, root: &Path) {
        let (embedder, info) = bitseek_codesearch::load_model(
            Some(&self.model()),
            false,
            &bitseek_codesearch::Encoder::Default,
        )
        .unwrap();
        bitseek_codesearch::index_repo(
            root,
            &embedder.units(),
            &info,
            &bitseek_codesearch::IndexOptions::default(),
            &|_, _| {},
        )
        .unwrap();
    }

    /// Indexes `roots` and returns a server state searching them (and a fresh database).
    pub fn state(&self, roots: &[PathBuf], options: Options) -> (tempfile::TempDir, Arc<AppState>) {
        for r in roots {
            self.index(r);
        }
        let code = CodeRepos::open(roots, Some(&self.model())).unwrap();
        super::state(Options {
            code: Some(Arc::new(code)),
            model_dir: Some(self.model()),
            ..options
        })
    }
}

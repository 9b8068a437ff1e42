#!/usr/bin/env python3
"""Mine (docstring, function) training pairs from registry packages, package-disjoint from the
dev evaluation set, with the dev set's extraction rules (see ../shared/data/codesearch/README.md).

    python scripts/mine_pairs.py --packages scripts/mine_pairs.txt --dev DIR --out OUT [--only npm,go]

Downloads each listed package (PyPI wheels with `pip download --no-deps`; crates from crates.io's
download endpoint, or the local cargo cache when it already holds the exact .crate; npm tarballs
from the npm registry, checked against its integrity hash; Go sources as Debian's golang-*-dev
packages with `apt-get download`), keeps only permissively licensed ones (licence read from the
package's own metadata, or Debian's copyright file), extracts pairs (Python with `ast`, Rust with
tree-sitter-rust, JavaScript/TypeScript in `mine_js.py`, Go in `mine_go.py`), de-duplicates them,
drops any pair whose code or query also occurs in the dev set, and splits packages into train /
validation / test by a seeded hash of the package name (every row of a package lands in one split).

Writes OUT/{python,rust,javascript,typescript,go}-{train,val,test}.jsonl and OUT/packages.tsv
(package, version, licence, pairs, split, or why it was skipped). Needs: pip, tree-sitter,
tree-sitter-rust, tree-sitter-javascript, tree-sitter-typescript, tree-sitter-go; apt-get and
dpkg-deb for Go.
"""
import argparse
import ast
import gzip
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import mine_go
import mine_js
from mine_text import plain_query

PERMISSIVE = re.compile(
    r"\b(MIT|Expat|BSD|Apache|ISC|Unlicense|0BSD|Zlib|PSF|Python Software Foundation|HPND|MIT-CMU|CC0|"
    r"BSL-1\.0|Public Domain|Historical Permission)",
    re.I,
)
COPYLEFT = re.compile(r"\b(GPL|LGPL|AGPL|MPL|EPL|CDDL|EUPL|OSL|Copyleft)", re.I)
SKIP_DIRS = {"tests", "test", "testing", "_vendor", "vendor", "vendored", "_vendored", "benches", "examples"}
STD_TRAITS = {
    "Display", "Debug", "From", "Into", "TryFrom", "TryInto", "Iterator", "DoubleEndedIterator",
    "ExactSizeIterator", "IntoIterator", "FromIterator", "Extend", "Drop", "Clone", "Copy", "Default",
    "PartialEq", "Eq", "PartialOrd", "Ord", "Hash", "Deref", "DerefMut", "AsRef", "AsMut", "Borrow",
    "BorrowMut", "Index", "IndexMut", "Add", "Sub", "Mul", "Div", "Rem", "Neg", "Not", "BitAnd",
    "BitOr", "BitXor", "Shl", "Shr", "AddAssign", "SubAssign", "MulAssign", "DivAssign", "RemAssign",
    "BitAndAssign", "BitOrAssign", "BitXorAssign", "ShlAssign", "ShrAssign", "FromStr", "Write",
    "Read", "Seek", "BufRead", "Error", "Future", "Fn", "FnMut", "FnOnce", "ToString", "Send", "Sync",
    "Serialize", "Deserialize", "Sum", "Product", "ToOwned", "Termination", "Stream",
}


def licence_ok(text):
    """Permissive when it names a permissive licence and no copyleft one (dual 'MIT OR GPL' is
    left out too: we keep only sources that are permissive under every reading)."""
    return bool(text) and bool(PERMISSIVE.search(text)) and not COPYLEFT.search(text)


def name_words(name):
    last = name.split(".")[-1].split("::")[-1]
    words = []
    for part in last.split("_"):
        words += re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+", part)
    return [w.lower() for w in words if w]


def name_in_query(name, query):
    words = name_words(name)
    if not words:
        return False
    pat = r"[ _]?".join(re.escape(w) for w in words)
    return re.search(r"(?<![A-Za-z0-9])" + pat + r"(s|es|ed|d|ing)?(?![A-Za-z0-9])", query, re.I) is not None


def skipped_path(path):
    parts = Path(path).parts
    return any(p in SKIP_DIRS for p in parts[:-1]) or parts[-1] in ("tests.rs", "test.rs")


# ---------------------------------------------------------------- Python

def py_query(doc):
    para = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    q = " ".join(para.split())
    if len(q.split()) < 3 or q[:1] in (":", "@") or q.startswith(">>>"):
        return None
    return q


def py_pairs(source, path):
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    lines = source.splitlines()

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield child, prefix + child.name
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)

    for fn, qual in walk(tree, ""):
        name = fn.name
        if "test" in name.lower() or (name.startswith("__") and name.endswith("__")):
            continue
        doc = ast.get_docstring(fn, clean=True)
        if not doc:
            continue
        query = py_query(doc)
        if not query:
            continue
        first = fn.body[0]
        keep = [
            l for i, l in enumerate(lines[fn.lineno - 1 : fn.end_lineno], start=fn.lineno)
            if not (first.lineno <= i <= first.end_lineno)
        ]
        code = textwrap.dedent("\n".join(keep))
        if sum(1 for l in code.splitlines() if l.strip()) < 3:
            continue
        yield {"path": path, "lineno": fn.lineno, "name": qual, "query": query, "code": code}


# ---------------------------------------------------------------- Rust

_rust_parser = None


def rust_parser():
    global _rust_parser
    if _rust_parser is None:
        import tree_sitter
        import tree_sitter_rust

        _rust_parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))
    return _rust_parser


def rust_doc_text(comments):
    out = []
    for c in comments:
        if c.startswith("///"):
            out.append(c[3:][1:] if c[3:4] == " " else c[3:])
        elif c.startswith("/**"):
            body = c[3:-2]
            for l in body.splitlines():
                l = l.strip()
                out.append(l[1:].lstrip() if l.startswith("*") else l)
        elif c.startswith("#[doc"):
            m = re.search(r'"((?:[^"\\]|\\.)*)"', c)
            if m:
                out.append(m.group(1).strip())
    return "\n".join(out)


def rust_query(doc):
    return plain_query(doc)


def rust_pairs(source, path):
    src = source.encode("utf-8", "replace")
    tree = rust_parser().parse(src)
    text = lambda n: src[n.start_byte : n.end_byte].decode("utf-8", "replace")

    def attrs_of(node):
        """Doc comments and attributes directly before `node`, nearest last."""
        docs, attrs = [], []
        prev = node.prev_sibling
        while prev is not None and prev.type in ("line_comment", "block_comment", "attribute_item"):
            t = text(prev)
            if prev.type == "attribute_item":
                if re.match(r"#\[\s*doc\s*=", t):
                    docs.append(t)
                else:
                    attrs.append(t)
            elif t.startswith("///") and not t.startswith("////") or t.startswith("/**") and not t.startswith("/***"):
                docs.append(t)
            else:
                break
            prev = prev.prev_sibling
        return list(reversed(docs)), attrs

    def is_test_attr(a):
        return re.search(r"#\[\s*(test|bench|tokio::test|cfg\s*\(\s*test\s*\))", a) is not None

    def walk(node, in_test, std_impl):
        for child in node.children:
            t = child.type
            if t == "mod_item":
                _, attrs = attrs_of(child)
                name = child.child_by_field_name("name")
                test = in_test or any(is_test_attr(a) for a in attrs) or (name is not None and text(name) == "tests")
                body = child.child_by_field_name("body")
                if body is not None:
                    yield from walk(body, test, False)
            elif t == "impl_item":
                _, attrs = attrs_of(child)
                trait = child.child_by_field_name("trait")
                std = False
                if trait is not None:
                    tn = re.sub(r"<.*", "", text(trait)).split("::")[-1].strip()
                    std = tn in STD_TRAITS
                body = child.child_by_field_name("body")
                if body is not None:
                    yield from walk(body, in_test or any(is_test_attr(a) for a in attrs), std)
            elif t in ("trait_item",):
                body = child.child_by_field_name("body")
                if body is not None:
                    yield from walk(body, in_test, False)
            elif t == "function_item":
                yield child, in_test, std_impl
                body = child.child_by_field_name("body")
                if body is not None:
                    yield from walk(body, in_test, False)
            elif child.child_count and t not in ("function_signature_item",):
                yield from walk(child, in_test, std_impl)

    for fn, in_test, std_impl in walk(tree.root_node, False, False):
        if in_test or std_impl or fn.child_by_field_name("body") is None:
            continue
        name = text(fn.child_by_field_name("name"))
        if "test" in name.lower() or name == "new":
            continue
        docs, attrs = attrs_of(fn)
        if not docs or any(is_test_attr(a) for a in attrs):
            continue
        query = rust_query(rust_doc_text(docs))
        if not query:
            continue
        col = fn.start_point[1]
        body = " " * col + text(fn)
        body = "\n".join(l for l in body.splitlines() if not re.match(r"\s*//[/!](?!/)", l))
        code = textwrap.dedent(body)
        if sum(1 for l in code.splitlines() if l.strip()) < 3:
            continue
        yield {"path": path, "line": fn.start_point[0] + 1, "name": name, "query": query, "code": code}


# ---------------------------------------------------------------- downloads

def fetch_python(name, version, cache):
    d = cache / "pypi" / f"{name}-{version}"
    if not d.exists() or not any(d.iterdir()):
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(d), f"{name}=={version}"],
            check=True,
        )
    return next(p for p in sorted(d.iterdir()) if p.suffix in (".whl", ".gz", ".zip"))


def python_files(archive):
    """(path, text) of every .py file and the licence text of a wheel or sdist."""
    files, meta = [], ""
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        z = zipfile.ZipFile(archive)
        for n in z.namelist():
            if n.endswith(".py"):
                files.append((n, z.read(n).decode("utf-8", "replace")))
            elif n.endswith(".dist-info/METADATA") or n.endswith("PKG-INFO"):
                meta = z.read(n).decode("utf-8", "replace")
    else:
        t = tarfile.open(archive)
        for m in t.getmembers():
            if m.isfile() and m.name.endswith(".py"):
                files.append((m.name.split("/", 1)[-1], t.extractfile(m).read().decode("utf-8", "replace")))
            elif m.isfile() and m.name.count("/") == 1 and m.name.endswith("PKG-INFO"):
                meta = t.extractfile(m).read().decode("utf-8", "replace")
    return files, python_licence(meta)


def python_licence(meta):
    head = meta.split("\n\n", 1)[0]
    expr = re.search(r"^License-Expression:\s*(.+)$", head, re.M)
    if expr:
        return expr.group(1).strip()
    lic = re.search(r"^License:\s*(.+)$", head, re.M)
    classifiers = re.findall(r"^Classifier:\s*License :: (.+)$", head, re.M)
    parts = []
    if classifiers:
        parts.append("; ".join(c.split(" :: ")[-1] for c in classifiers))
    if lic and len(lic.group(1)) < 120:
        parts.append(lic.group(1).strip())
    return " | ".join(parts)


def fetch_crate(name, version, cache):
    local = list(Path.home().glob(f".cargo/registry/cache/*/{name}-{version}.crate"))
    if local:
        return local[0]
    p = cache / "crates" / f"{name}-{version}.crate"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        url = f"https://crates.io/api/v1/crates/{name}/{version}/download"
        req = urllib.request.Request(url, headers={"User-Agent": "bitseek mine_pairs.py"})
        with urllib.request.urlopen(req) as r:
            p.write_bytes(r.read())
    return p


def crate_files(archive):
    files, licence = [], ""
    t = tarfile.open(archive)
    for m in t.getmembers():
        if not m.isfile():
            continue
        rel = m.name.split("/", 1)[-1]
        if rel.endswith(".rs"):
            files.append((rel, t.extractfile(m).read().decode("utf-8", "replace")))
        elif rel == "Cargo.toml":
            toml = t.extractfile(m).read().decode("utf-8", "replace")
            lic = re.search(r'^license\s*=\s*"([^"]*)"', toml, re.M)
            licence = lic.group(1) if lic else ""
    return files, licence


# ---------------------------------------------------------------- sources

def python_source(name, version, cache):
    files, licence = python_files(fetch_python(name, version, cache))
    return [(p, s, py_pairs) for p, s in files if not skipped_path(p)], licence


def rust_source(name, version, cache):
    files, licence = crate_files(fetch_crate(name, version, cache))
    return [(p, s, rust_pairs) for p, s in files if not skipped_path(p)], licence


def npm_source(name, version, cache):
    """Rows get `lang` javascript or typescript by file (their pools are evaluated apart)."""
    files, licence = mine_js.npm_files(mine_js.fetch_npm(name, version, cache))

    def extractor(kind):
        lang = "javascript" if kind == "javascript" else "typescript"
        return lambda source, path: ({**p, "lang": lang} for p in mine_js.js_pairs(source, path, kind))

    return [(p, s, extractor(k)) for p, s, k in files], licence


def go_source(name, version, cache):
    files, licence = mine_go.deb_files(mine_go.fetch_deb(name, version, cache))
    return [(p, s, mine_go.go_pairs) for p, s in files if not mine_go.skipped_file(p, s)], licence


# Source kind in the package list → (name, version, cache) → ([(path, text, extract)], licence).
SOURCES = {"python": python_source, "rust": rust_source, "npm": npm_source, "go": go_source}


# ---------------------------------------------------------------- main

def norm_query(q):
    return " ".join(q.lower().split())


def split_of(package, seed):
    h = int(hashlib.sha256(f"{seed}:{package}".encode()).hexdigest()[:8], 16) / 2**32
    return "test" if h < 0.15 else "val" if h < 0.25 else "train"


def read_dev(dev):
    names, codes, queries = set(), set(), set()
    for lang in ("python", "rust"):
        p = Path(dev) / f"dev-{lang}.jsonl.gz"
        if not p.exists():
            sys.exit(f"{p}: missing; --dev must name the folder with dev-python.jsonl.gz and dev-rust.jsonl.gz")
        for line in gzip.open(p, "rt", encoding="utf-8"):
            r = json.loads(line)
            names.add((lang, r["package"].lower().replace("_", "-")))
            codes.add(r["code"])
            queries.add(norm_query(r["query"]))
    return names, codes, queries


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", required=True, help="list file: 'source name version' a line")
    ap.add_argument("--dev", required=True, help="folder of the dev set (kept out of training)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", help="download folder (default OUT/downloads)")
    ap.add_argument("--seed", default="bitseek-head-1", help="seed of the package split")
    ap.add_argument("--min-pairs", type=int, default=30, help="packages giving fewer are not used")
    ap.add_argument("--only", type=lambda s: s.split(","), help=f"mine only these sources ({','.join(SOURCES)})")
    a = ap.parse_args()
    for kind in a.only or []:
        if kind not in SOURCES:
            sys.exit(f"--only {kind!r}: unknown source; the sources are {', '.join(SOURCES)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(a.cache) if a.cache else out / "downloads"
    dev_names, dev_codes, dev_queries = read_dev(a.dev)
    wanted = []
    for i, line in enumerate(open(a.packages), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            lang, name, version = line.split()
        except ValueError:
            sys.exit(f"{a.packages}:{i}: expected 'source name version', found {line!r}")
        if lang not in SOURCES:
            sys.exit(f"{a.packages}:{i}: unknown source {lang!r} ({', '.join(SOURCES)})")
        if a.only and lang not in a.only:
            continue
        if (lang, name.lower().replace("_", "-")) in dev_names:
            sys.exit(f"{a.packages}:{i}: {name} is a dev-set package; it must stay out of training")
        wanted.append((lang, name, version))

    seen_code = set(dev_codes)
    rows = {}
    report = []
    for lang, name, version in wanted:
        try:
            files, licence = SOURCES[lang](name, version, cache)
        except Exception as e:  # a package that cannot be fetched is reported, not fatal
            report.append((lang, name, version, "", 0, "", f"skipped: download failed ({e})"))
            print(f"{lang} {name} {version}: download failed: {e}", file=sys.stderr)
            continue
        if not licence_ok(licence):
            report.append((lang, name, version, licence, 0, "", "skipped: licence not permissive or unknown"))
            print(f"{lang} {name} {version}: skipped, licence {licence!r}", file=sys.stderr)
            continue
        pairs, queries = [], set()
        for path, source, extract in sorted(files, key=lambda f: f[0]):
            for p in extract(source, path):
                nq = norm_query(p["query"])
                if p["code"] in seen_code or nq in dev_queries:
                    continue
                if lang != "python" and nq in queries:
                    continue
                seen_code.add(p["code"])
                queries.add(nq)
                pairs.append(p)
        split = split_of(f"{lang}:{name}", a.seed)
        if len(pairs) < a.min_pairs:
            report.append((lang, name, version, licence, len(pairs), "", f"skipped: fewer than {a.min_pairs} pairs"))
            continue
        for p in pairs:
            row_lang = p.pop("lang", lang)
            row = {"lang": row_lang, "source": lang, "package": name, "version": version, "license": licence, **p}
            row["name_in_query"] = name_in_query(p["name"], p["query"])
            row["split"] = split
            rows.setdefault((row_lang, split), []).append(row)
        report.append((lang, name, version, licence, len(pairs), split, "used"))
        print(f"{lang} {name} {version}: {len(pairs)} pairs -> {split} ({licence})", file=sys.stderr)

    for (lang, split), rs in sorted(rows.items()):
        with open(out / f"{lang}-{split}.jsonl", "w", encoding="utf-8") as f:
            for r in rs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(out / "packages.tsv", "w", encoding="utf-8") as f:
        f.write("lang\tpackage\tversion\tlicense\tpairs\tsplit\tstatus\n")
        for r in report:
            f.write("\t".join(str(x) for x in r) + "\n")
    for (lang, split), rs in sorted(rows.items()):
        print(f"{lang} {split}: {len(rs)} pairs from {len({r['package'] for r in rs})} packages")


if __name__ == "__main__":
    main()

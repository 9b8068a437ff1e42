"""Go pairs for scripts/mine_pairs.py: Debian's golang-*-dev packages (the upstream sources under
/usr/share/gocode/src), and (doc comment, func) pairs extracted with tree-sitter-go by the rules
bitseek-chunk uses for Go doc comments.

A candidate is a `func` or method declaration with a body. Its doc comment is the run of comments
directly above it, up to the first blank line (a comment trailing code on its line is not one);
directive lines (`//go:…`, `//line …`, `//nolint…`) are left out, as `go doc` does. The query is
its first paragraph through the same plain-text rules as Rust's doc comments (Go's `[Name]` doc
links become their text); licence headers are not documentation. Code is the declaration without
its doc comment, dedented; fewer than 3 non-blank lines is skipped, as are `_test.go` files,
generated files (`// Code generated … DO NOT EDIT.`), `testdata`/`vendor`/`examples` directories,
names containing `test`, `init`, and the methods that implement standard interfaces (`String`,
`Error`, `Len`, `Less`, `Swap`, `MarshalJSON`, …: the Rust rules' standard trait impls).

The licence is the one Debian's machine-readable `copyright` file gives for `Files: *`; a package
is kept only when no stanza other than `debian/*` names a copyleft licence.
"""
import re
import subprocess
import tempfile
import textwrap
from pathlib import Path

from mine_text import LICENCE_HEADER, plain_query

SKIP_DIRS = {"testdata", "vendor", "examples", "example", "_examples", "_example", "test", "tests", "benchmarks"}
STD_METHODS = {
    "String", "GoString", "Error", "Unwrap", "Is", "As", "Format", "Len", "Less", "Swap",
    "MarshalJSON", "UnmarshalJSON", "MarshalText", "UnmarshalText", "MarshalBinary",
    "UnmarshalBinary", "MarshalYAML", "UnmarshalYAML", "Read", "Write", "Close", "ServeHTTP",
}
DIRECTIVE = re.compile(r"^//(go:|line |nolint|export |extern |[a-z0-9]+:[a-z0-9])")

_parser = None


def go_parser():
    global _parser
    if _parser is None:
        import tree_sitter
        import tree_sitter_go

        _parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_go.language()))
    return _parser


def skipped_file(path, source):
    parts = Path(path).parts
    return (
        not parts[-1].endswith(".go")
        or parts[-1].endswith("_test.go")
        or any(p in SKIP_DIRS for p in parts[:-1])
        or re.search(r"^// Code generated .* DO NOT EDIT\.$", source, re.M) is not None
    )


def doc_lines(fn, text):
    """The comments directly above `fn`, up to a blank line, as plain lines (directives out);
    None when there are none."""
    pieces, top = [], fn.start_point[0]
    prev = fn.prev_sibling
    while prev is not None and prev.type == "comment" and prev.end_point[0] + 1 >= top:
        before = prev.prev_sibling
        if before is not None and before.type != "comment" and before.end_point[0] == prev.start_point[0]:
            break  # trails code on its line
        pieces.append(text(prev))
        top = prev.start_point[0]
        prev = before
    if not pieces:
        return None
    lines = []
    for c in reversed(pieces):
        if c.startswith("/*"):
            for l in c[2:-2].splitlines():
                l = l.strip()
                lines.append(l[1:].lstrip() if l.startswith("*") else l)
        elif not DIRECTIVE.match(c):
            lines.append(c[2:][1:] if c[2:3] in (" ", "\t") else c[2:])
    return "\n".join(lines).strip("\n")


def go_pairs(source, path):
    src = source.encode("utf-8", "replace")
    tree = go_parser().parse(src)
    text = lambda n: src[n.start_byte : n.end_byte].decode("utf-8", "replace")
    for fn in tree.root_node.children:
        if fn.type not in ("function_declaration", "method_declaration") or fn.child_by_field_name("body") is None:
            continue
        name = text(fn.child_by_field_name("name"))
        if "test" in name.lower() or name == "init" or (fn.type == "method_declaration" and name in STD_METHODS):
            continue
        doc = doc_lines(fn, text)
        if not doc or LICENCE_HEADER.search(doc):
            continue
        query = plain_query(doc)
        if not query:
            continue
        qual = name
        if fn.type == "method_declaration":
            recv = fn.child_by_field_name("receiver")
            ty = re.sub(r"\[.*", "", text(recv).strip("()").split()[-1].lstrip("*")) if recv is not None else ""
            qual = f"{ty}.{name}" if ty else name
        code = textwrap.dedent(" " * fn.start_point[1] + text(fn))
        if sum(1 for l in code.splitlines() if l.strip()) < 3:
            continue
        yield {"path": path, "line": fn.start_point[0] + 1, "name": qual, "query": query, "code": code}


# ---------------------------------------------------------------- Debian

def fetch_deb(name, version, cache):
    """`apt-get download NAME=VERSION` into the cache (the archive's signed index vouches for it)."""
    d = cache / "deb"
    d.mkdir(parents=True, exist_ok=True)
    found = list(d.glob(f"{name}_*.deb"))
    want = [p for p in found if deb_version(p) == version]
    if want:
        return want[0]
    r = subprocess.run(["apt-get", "download", "-q", f"{name}={version}"], cwd=d, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"apt-get download {name}={version}: {r.stderr.strip()} (is the Debian archive in apt's sources?)")
    return next(p for p in d.glob(f"{name}_*.deb") if deb_version(p) == version)


def deb_version(deb):
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True).stdout.strip()


def deb_files(deb):
    """(path under gocode/src, text) of every .go file of a golang-*-dev package, and its licence."""
    name = subprocess.run(["dpkg-deb", "-f", str(deb), "Package"], capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        root = Path(tmp) / "usr/share/gocode/src"
        files = []
        for p in sorted(root.rglob("*.go")) if root.exists() else []:
            if p.is_file() and not p.is_symlink():
                files.append((str(p.relative_to(root)), p.read_text("utf-8", "replace")))
        cp = Path(tmp) / "usr/share/doc" / name / "copyright"
        licence = debian_licence(cp.read_text("utf-8", "replace")) if cp.is_file() else ""
    return files, licence


def debian_licence(text):
    """The `Files: *` licence of a DEP-5 copyright file, followed by those of its other non-`debian/*`
    stanzas (so that a copyleft file anywhere rejects the package); empty when unknown."""
    main, others = "", []
    for stanza in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:\s*(.+(?:\n[ \t]+.+)*)", stanza, re.M)
        lic = re.search(r"^License:\s*(.+)$", stanza, re.M)
        if not files or not lic:
            continue
        globs = files.group(1).split()
        if globs == ["*"]:
            main = lic.group(1).strip()
        elif not all(g.startswith("debian/") for g in globs):
            others.append(lic.group(1).strip())
    others = sorted(set(others) - {main})
    return f"{main} (other files: {', '.join(others)})" if main and others else main

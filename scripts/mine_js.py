"""JavaScript and TypeScript pairs for scripts/mine_pairs.py: npm tarballs, and (JSDoc comment,
function) pairs extracted with tree-sitter by the rules bitseek-chunk uses for doc comments.

A candidate is a function declaration, a class method, or a `const`/`let`/`var` or class field
holding an arrow function or function expression, with a body. Its doc comment is the `/** … */`
block right before it (decorators in between allowed; `export` is part of the definition). Unlike
bitseek-chunk, blank lines in between are allowed, as JSDoc itself attaches comments, except after
the file's first comment (its header). The query is the JSDoc description (the text before the first block tag such
as `@param`, with `{@link X}` turned into its text) through the same plain-text rules as Rust's
doc comments; licence headers are not documentation. Code is the definition without its doc
comment and decorators, dedented; fewer than 3 non-blank lines is skipped, as are names containing
`test`, constructors, and type-only declarations (overloads, `.d.ts` files, abstract methods).

Files: TypeScript sources (not `.d.ts`), and `.js`/`.mjs`/`.cjs`/`.jsx` files that have no
TypeScript source of the same name in the package (those are its compiled output), skipping
minified files (`.min.js`, lines over 1,000 characters or a mean line over 150), bundles (webpack,
browserify, or `// node_modules/…` markers of inlined dependencies: other packages' code under
their own licences) and a build of the whole package named after it beside its lib/ or src/
sources (`mocha.js`, `dist/axios.js`). Tests, specs, mocks, fixtures, examples, benchmarks, docs
and nested `node_modules` are skipped.
"""
import hashlib
import base64
import json
import re
import tarfile
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

from mine_text import LICENCE_HEADER, plain_query

SKIP_DIRS = {
    "test", "tests", "__tests__", "spec", "specs", "__mocks__", "mocks", "fixtures", "__fixtures__",
    "example", "examples", "benchmark", "benchmarks", "bench", "docs", "doc", "coverage",
    "node_modules", "vendor", "e2e",
}
JS_EXT = {".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript"}
TS_EXT = {".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "typescript"}
FUNCTION_VALUES = {"arrow_function", "function_expression", "function", "generator_function"}

_parsers = {}


def parser(kind):
    """tree-sitter parser for `javascript`, `typescript` or `tsx`."""
    if kind not in _parsers:
        import tree_sitter

        if kind == "javascript":
            import tree_sitter_javascript as g

            lang = g.language()
        else:
            import tree_sitter_typescript as g

            lang = g.language_tsx() if kind == "tsx" else g.language_typescript()
        _parsers[kind] = tree_sitter.Parser(tree_sitter.Language(lang))
    return _parsers[kind]


def lang_of(path):
    """`javascript` or `typescript` for a source file, None for anything else (`.d.ts` included)."""
    p = path.lower()
    if re.search(r"\.d\.([^/]*\.)?[cm]?ts$", p):
        return None  # declarations: index.d.ts, index.d.mts, schema.d.json.ts
    ext = Path(p).suffix
    return JS_EXT.get(ext) or TS_EXT.get(ext)


def skipped_file(path):
    parts = Path(path).parts
    name = parts[-1].lower()
    return (
        any(p.lower() in SKIP_DIRS for p in parts[:-1])
        or re.search(r"[.-]min\.[cm]?js$", name) is not None
        or re.search(r"\.(test|spec|stories|bench)\.[cm]?[jt]sx?$", name) is not None
    )


def minified(source):
    """A minified or bundled file: its functions are not the package's written source, and a
    bundle may inline other packages' code under their own licences."""
    lines = [l for l in source.splitlines() if l.strip()]
    if not lines:
        return False
    if max(len(l) for l in lines) > 1000 or sum(len(l) for l in lines) / len(lines) > 150:
        return True
    return (
        "__webpack_require__" in source
        or "function(require,module,exports)" in source.replace(" ", "")
        or re.search(r"^\s*//.*\bnode_modules/", source, re.M) is not None
    )


def package_bundle(rel, package, has_sources):
    """`mocha.js`, `dist/axios.js`, `build/es6/luxon.mjs`: a build of the whole package named after
    it, skipped when the package also ships the sources it was built from (lib/ or src/)."""
    parts = Path(rel).parts
    named = parts[-1].split(".")[0].lower() == package.split("/")[-1].lower()
    built = len(parts) == 1 or parts[0] in ("dist", "build", "umd", "bundle", "bundles", "browser")
    return has_sources and named and built


def jsdoc_query(comment):
    """The query of a `/** … */` comment: its description before the first block tag (else its
    `@description` or `@summary`), as plain text; None for licence headers and comments without a
    description."""
    if not comment.startswith("/**") or comment.startswith("/**/") or LICENCE_HEADER.search(comment):
        return None
    body = comment[3:-2] if comment.endswith("*/") else comment[3:]
    lines = []
    for l in body.splitlines():
        l = l.strip()
        l = l[1:] if l.startswith("*") else l
        l = l[1:] if l.startswith(" ") else l
        lines.append(l.rstrip())
    blocks = {None: []}  # block tag → its lines; None: the text before the first tag
    cur = None
    for l in lines:
        tag = re.match(r"@(\w+)\s*(.*)", l.strip())
        if tag:
            cur = tag.group(1)
            blocks.setdefault(cur, [])
            l = tag.group(2)
        blocks[cur].append(l)
    text = next(
        ("\n".join(blocks[k]) for k in (None, "description", "desc", "summary") if "\n".join(blocks.get(k, [])).strip()),
        "",
    )
    text = re.sub(r"\{@(?:link|linkcode|linkplain)\s+([^}|\s]+)(?:\s*\|\s*|\s+)([^}]+)\}", r"\2", text)
    text = re.sub(r"\{@(?:link|linkcode|linkplain|code)\s+([^}]+)\}", r"\1", text)
    if re.search(r"\{@\w+", text):
        return None  # {@inheritDoc} and the like: the text lives elsewhere
    return plain_query(text)


def js_pairs(source, path, kind):
    """(query, code) pairs of one file; `kind` is `javascript`, `typescript` or `tsx`."""
    src = source.encode("utf-8", "replace")
    tree = parser(kind).parse(src)
    text = lambda n: src[n.start_byte : n.end_byte].decode("utf-8", "replace")

    def candidates(node, cls):
        for child in node.children:
            t = child.type
            if t in ("class_declaration", "class", "abstract_class_declaration"):
                name = child.child_by_field_name("name")
                body = child.child_by_field_name("body")
                if body is not None:
                    yield from candidates(body, text(name) if name is not None else None)
                continue
            fn = None
            if t in ("function_declaration", "generator_function_declaration"):
                name, fn, outer = child.child_by_field_name("name"), child, child
                q = text(name) if name is not None else None
            elif t == "method_definition":
                name, fn, outer = child.child_by_field_name("name"), child, child
                q = (f"{cls}." if cls else "") + text(name) if name is not None else None
            elif t == "variable_declarator":
                name, value = child.child_by_field_name("name"), child.child_by_field_name("value")
                if name is not None and name.type == "identifier" and value is not None and value.type in FUNCTION_VALUES:
                    fn = value
                    p = child.parent
                    outer = p if p.type in ("lexical_declaration", "variable_declaration") and p.named_child_count == 1 else child
                    q = text(name)
            elif t in ("field_definition", "public_field_definition"):
                name = child.child_by_field_name("property") or child.child_by_field_name("name")
                value = child.child_by_field_name("value")
                if name is not None and value is not None and value.type in FUNCTION_VALUES:
                    fn, outer = value, child
                    q = (f"{cls}." if cls else "") + text(name)
            if fn is not None and q and fn.child_by_field_name("body") is not None:
                if outer.parent is not None and outer.parent.type == "export_statement":
                    outer = outer.parent
                yield outer, q
            if child.child_count:
                yield from candidates(child, cls)

    for outer, qual in candidates(tree.root_node, None):
        short = qual.split(".")[-1]
        if "test" in short.lower() or short == "constructor":
            continue
        doc = doc_comment(outer, text)
        if doc is None:
            continue
        query = jsdoc_query(doc)
        if not query:
            continue
        start = outer
        body = " " * start.start_point[1] + text(start)
        code = textwrap.dedent(body)
        if sum(1 for l in code.splitlines() if l.strip()) < 3:
            continue
        yield {"path": path, "line": start.start_point[0] + 1, "name": qual, "query": query, "code": code}


def doc_comment(outer, text):
    """The `/** … */` block right before `outer` (through its decorators), or None. Blank lines in
    between are allowed, as JSDoc attaches comments, except for the file's first comment, which
    is then the file's own header."""
    top = outer.start_point[0]
    prev = outer.prev_sibling
    while prev is not None and prev.type == "decorator":
        top = prev.start_point[0]
        prev = prev.prev_sibling
    if prev is None or prev.type != "comment":
        return None
    first_in_file = prev.parent.type == "program" and all(
        s.type == "comment" or s.type == "hash_bang_line" for s in prev.parent.children[: prev_index(prev)]
    )
    if prev.end_point[0] + 1 < top and first_in_file:
        return None
    before = prev.prev_sibling
    if before is not None and before.type != "comment" and before.end_point[0] == prev.start_point[0]:
        return None  # `x = 1; /** … */` trails code on its line
    t = text(prev)
    return t if t.startswith("/**") else None


def prev_index(node):
    """`node`'s position among its parent's children."""
    return next(i for i, c in enumerate(node.parent.children) if c.id == node.id)


# ---------------------------------------------------------------- npm

def fetch_npm(name, version, cache):
    """The package's tarball from the npm registry, checked against the registry's integrity."""
    p = cache / "npm" / f"{name.replace('/', '+')}-{version}.tgz"
    if p.exists():
        return p
    p.parent.mkdir(parents=True, exist_ok=True)
    meta_url = f"https://registry.npmjs.org/{urllib.parse.quote(name, safe='@')}/{version}"
    req = urllib.request.Request(meta_url, headers={"User-Agent": "bitseek mine_pairs.py"})
    with urllib.request.urlopen(req) as r:
        dist = json.load(r)["dist"]
    with urllib.request.urlopen(urllib.request.Request(dist["tarball"], headers=req.headers)) as r:
        data = r.read()
    integrity = dist.get("integrity", "")
    if integrity.startswith("sha512-"):
        got = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if got != integrity[7:]:
            raise ValueError(f"{dist['tarball']}: sha512 {got} does not match the registry's {integrity}")
    elif dist.get("shasum") and hashlib.sha1(data).hexdigest() != dist["shasum"]:
        raise ValueError(f"{dist['tarball']}: sha1 does not match the registry's {dist['shasum']}")
    p.write_bytes(data)
    return p


def npm_files(archive):
    """(path, text, kind) of the package's source files worth reading, and its licence."""
    files, licence, package = [], "", ""
    t = tarfile.open(archive)
    members = [m for m in t.getmembers() if m.isfile()]
    for m in members:
        rel = m.name.split("/", 1)[-1]
        if rel == "package.json":
            meta = json.loads(t.extractfile(m).read().decode("utf-8", "replace"))
            licence = npm_licence(meta)
            package = str(meta.get("name", ""))
    sources = [(m, m.name.split("/", 1)[-1]) for m in members]
    sources = [(m, rel, lang_of(rel)) for m, rel in sources if lang_of(rel) and not skipped_file(rel)]
    ts_stems = {stem(rel) for _, rel, lang in sources if lang == "typescript"}
    has_sources = any(Path(rel).parts[0] in ("lib", "src") for _, rel, _ in sources)
    for m, rel, lang in sources:
        if lang == "javascript" and stem(rel) in ts_stems:
            continue  # compiled from a TypeScript source the package ships
        if package and package_bundle(rel, package, has_sources):
            continue
        text = t.extractfile(m).read().decode("utf-8", "replace")
        if lang == "javascript" and minified(text):
            continue
        kind = "tsx" if rel.lower().endswith(".tsx") else lang
        files.append((rel, text, kind))
    return files, licence


def stem(path):
    """`dist/esm/parse.js` and `src/parse.ts` → `parse`."""
    return Path(path).name.split(".")[0]


def npm_licence(meta):
    lic = meta.get("license") or meta.get("licenses") or ""
    if isinstance(lic, dict):
        lic = lic.get("type", "")
    if isinstance(lic, list):
        lic = " OR ".join(l.get("type", "") if isinstance(l, dict) else str(l) for l in lic)
    return str(lic)

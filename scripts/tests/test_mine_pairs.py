"""The JavaScript/TypeScript and Go extraction rules of scripts/mine_pairs.py on small inline
sources: what becomes a (query, code) pair and what must be skipped."""
import io
import sys
import tarfile
from pathlib import Path

import pytest

# Needs tree-sitter and its JavaScript, TypeScript, Go and Rust grammars (scripts/test-python.sh
# installs them).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mine_go  # noqa: E402
import mine_js  # noqa: E402
from mine_pairs import licence_ok  # noqa: E402


def pairs_js(src, kind="javascript"):
    return {p["name"]: p for p in mine_js.js_pairs(src, "lib/x.js", kind)}


def test_jsdoc_function_gives_its_description_and_code_without_the_comment():
    src = '''
/**
 * Parses a duration like `1h30m` into seconds. See {@link Duration} for units.
 *
 * More detail that is not the query.
 * @param {string} s the text
 * @returns {number}
 */
function parseDuration(s) {
  const m = /(\\d+)h/.exec(s);
  return m ? Number(m[1]) * 3600 : 0;
}
'''
    p = pairs_js(src)["parseDuration"]
    assert p["query"] == "Parses a duration like 1h30m into seconds. See Duration for units."
    assert p["code"].startswith("function parseDuration(s) {") and "/**" not in p["code"]
    assert p["line"] == 9


def test_exported_arrow_function_keeps_export_and_blank_line_after_jsdoc_is_allowed():
    src = '''import x from "y";

/** Adds the two numbers and logs the sum. */

export const add = (a, b) => {
  const s = a + b;
  console.log(s);
  return s;
};
'''
    p = pairs_js(src)["add"]
    assert p["query"] == "Adds the two numbers and logs the sum."
    assert p["code"].startswith("export const add = (a, b) => {")


def test_typescript_method_is_qualified_and_drops_decorators():
    src = '''
export class Cache<T> {
  /**
   * Returns the cached value for the key, loading it on a miss.
   */
  @memoize()
  public async get(key: string): Promise<T> {
    const hit = this.map.get(key);
    return hit ?? this.load(key);
  }

  /** Sets up the cache with its default size. */
  constructor(size: number) {
    this.size = size;
    this.map = new Map();
  }

  /** Declared only: an overload has no body to search. */
  abstract load(key: string): Promise<T>;
}
'''
    got = pairs_js(src, "typescript")
    assert set(got) == {"Cache.get"}, "constructors and bodiless declarations are not candidates"
    p = got["Cache.get"]
    assert p["query"] == "Returns the cached value for the key, loading it on a miss."
    assert p["code"].startswith("public async get(key: string)") and "@memoize" not in p["code"]


def test_js_skips_undocumented_licence_headers_tag_only_docs_and_tests():
    src = '''/**
 * Copyright (c) Example Corp. Licensed under the MIT license.
 */
function first(a) {
  a += 1;
  return a;
}

/** @private */
function tagOnly(a) {
  a += 1;
  return a;
}

/** {@inheritDoc Base.run} */
function inherited(a) {
  a += 1;
  return a;
}

function undocumented(a) {
  a += 1;
  return a;
}

/** Checks that the thing works as it should. */
function testTheThing(a) {
  a += 1;
  return a;
}
'''
    assert pairs_js(src) == {}


def test_file_header_comment_followed_by_a_blank_line_is_not_a_doc_comment():
    src = '''/** Utilities for working with strings in the browser. */

function pad(s, n) {
  while (s.length < n) s = " " + s;
  return s;
}
'''
    assert pairs_js(src) == {}


def test_minified_and_bundled_javascript_and_d_ts_are_skipped():
    assert mine_js.minified("var a=1;" * 200)
    assert mine_js.minified("function f(){}\nvar __webpack_require__ = 1;\n")
    assert mine_js.minified("// node_modules/ms/index.js\nfunction ms(a) {\n  return a;\n}\n")
    assert not mine_js.minified("function f(a) {\n  return a;\n}\n")
    assert mine_js.package_bundle("mocha.js", "mocha", True) and mine_js.package_bundle("dist/axios.js", "axios", True)
    assert not mine_js.package_bundle("dist/axios.js", "axios", False), "a package shipped only as its build is read"
    assert not mine_js.package_bundle("lib/axios.js", "axios", True)
    assert mine_js.lang_of("types/index.d.ts") is None
    assert mine_js.lang_of("src/a.tsx") == "typescript" and mine_js.lang_of("lib/a.mjs") == "javascript"
    assert mine_js.skipped_file("dist/lib.min.js") and mine_js.skipped_file("src/__tests__/a.ts")
    assert mine_js.skipped_file("src/a.spec.ts") and not mine_js.skipped_file("src/a.ts")


def test_npm_tarball_reads_typescript_sources_over_their_compiled_javascript(tmp_path):
    body = "/** Doubles the number it is given. */\nexport function double(x) {\n  const y = x * 2;\n  return y;\n}\n"
    files = {
        "package/package.json": '{"name": "p", "license": "MIT"}',
        "package/src/double.ts": body,
        "package/dist/double.js": body,
        "package/dist/double.d.ts": "export declare function double(x: number): number;\n",
    }
    tgz = tmp_path / "p.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    got, licence = mine_js.npm_files(tgz)
    assert licence == "MIT"
    assert [(p, k) for p, _, k in got] == [("src/double.ts", "typescript")]


GO = '''// Copyright 2020 The Example Authors. All rights reserved.
// Use of this source code is governed by a BSD-style licence.
package trie

// Insert adds the key to the trie and reports whether it was new.
// Keys are split at slashes.
//
// A second paragraph that is not the query.
//
//go:noinline
func (t *Trie[V]) Insert(key string, v V) bool {
	parts := strings.Split(key, "/")
	return t.insert(parts, v)
}

// String implements fmt.Stringer for debugging output.
func (t *Trie[V]) String() string {
	var b strings.Builder
	return b.String()
}

func undocumented(a int) int {
	a++
	return a
}

x := 1 // not a doc comment
func trailing(a int) int {
	a++
	return a
}
'''


def test_go_func_with_line_comments_gives_first_paragraph_without_directives():
    got = {p["name"]: p for p in mine_go.go_pairs(GO, "trie/trie.go")}
    assert set(got) == {"Trie.Insert"}, "String() implements a standard interface; the rest has no doc"
    p = got["Trie.Insert"]
    assert p["query"] == "Insert adds the key to the trie and reports whether it was new. Keys are split at slashes."
    assert p["code"].startswith("func (t *Trie[V]) Insert(key string, v V) bool {") and "//" not in p["code"]


def test_go_licence_header_directly_above_a_func_is_not_its_doc():
    src = "// Copyright 2021 Someone. Licensed under the Apache License.\nfunc Open(p string) error {\n\tx := p\n\treturn use(x)\n}\n"
    assert list(mine_go.go_pairs(src, "a.go")) == []


def test_go_test_generated_and_testdata_files_are_skipped():
    assert mine_go.skipped_file("pkg/a_test.go", "")
    assert mine_go.skipped_file("pkg/testdata/a.go", "")
    assert mine_go.skipped_file("pkg/a.pb.go", "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage a\n")
    assert not mine_go.skipped_file("pkg/a.go", "package a\n")


def test_debian_copyright_gives_the_main_licence_and_flags_copyleft_files():
    dep5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2015 Someone
License: Expat

Files: debian/*
Copyright: 2020 A Debian Developer
License: GPL-2+

Files: contrib/*
Copyright: 2018 Other
License: LGPL-3
"""
    lic = mine_go.debian_licence(dep5)
    assert lic.startswith("Expat") and not licence_ok(lic), "a copyleft file outside debian/ rejects the package"
    plain = dep5.split("Files: contrib")[0]
    assert mine_go.debian_licence(plain) == "Expat" and licence_ok("Expat")


def test_npm_tarball_that_does_not_match_the_registry_integrity_is_refused(tmp_path, monkeypatch):
    import base64
    import hashlib
    import json as json_

    tarball = b"not the tarball the registry vouched for"
    good = base64.b64encode(hashlib.sha512(b"the real tarball").digest()).decode()
    meta = {"dist": {"tarball": "https://registry.npmjs.org/p/-/p-1.0.0.tgz", "integrity": f"sha512-{good}"}}

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(req):
        url = req.full_url
        return Response(json_.dumps(meta).encode() if url.endswith("/1.0.0") else tarball)

    monkeypatch.setattr(mine_js.urllib.request, "urlopen", urlopen)
    with pytest.raises(ValueError, match="does not match the registry"):
        mine_js.fetch_npm("p", "1.0.0", tmp_path)
    assert not list(tmp_path.rglob("*.tgz")), "a refused tarball is not cached"

"""bitseek.CodeIndex: the same index files and answers as `bitseek index` / `bitseek search`."""

import json
import os

import pytest

import bitseek


def update_or_skip(code):
    try:
        return code.update()
    except OSError as e:
        if "model" in str(e) and os.environ.get("BITSEEK_REQUIRE_MODEL") != "1":
            pytest.skip(f"no embedding model installed (bitseek model fetch): {e}")
        raise


def cli_search(cli, repo, question, *flags):
    out = cli("search", "--dir", repo, "--json", "-k", 5, *flags, question).stdout
    return json.loads(out)["hits"]


def test_python_index_answers_cli_search(repo, cli):
    code = bitseek.CodeIndex(repo)
    report = update_or_skip(code)
    assert report["files"] == 3 and report["files_embedded"] == 3 and report["units"] >= 3
    hits = code.search("where is the checksum verified", k=5)
    assert hits[0]["path"] == "store/checksum.py" and hits[0]["signature"].startswith("def verify_checksum")
    want = cli_search(cli, repo, "where is the checksum verified")
    assert [(h["path"], h["line"], h["end_line"], h["signature"]) for h in hits] == [
        (h["path"], h["line"], h["end_line"], h["signature"]) for h in want
    ]
    for got, w in zip(hits, want):
        assert got["score"] == pytest.approx(w["score"], rel=1e-5)
    only_rust = code.search("sorting", k=5, lang="rust")
    assert [h["path"] for h in only_rust] == ["src/sort.rs"]
    # Incremental: nothing changed, nothing re-embedded.
    again = code.update()
    assert again["files_embedded"] == 0 and again["files_reused"] == 3


def test_cli_index_searched_from_python(repo, cli):
    if os.environ.get("BITSEEK_REQUIRE_MODEL") != "1":
        update_or_skip(bitseek.CodeIndex(repo))  # skips when no model; builds the index otherwise
    cli("index", repo)
    (repo / "net" / "http.py").unlink()
    cli("index", repo)
    hits = bitseek.CodeIndex(repo).search("download a web page", k=5)
    assert "net/http.py" not in [h["path"] for h in hits]
    want = cli_search(cli, repo, "download a web page")
    assert [(h["path"], h["line"]) for h in hits] == [(h["path"], h["line"]) for h in want]


def test_code_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index in"):
        bitseek.CodeIndex(tmp_path).search("anything")
    with pytest.raises(ValueError, match="0 is not allowed"):
        bitseek.CodeIndex(tmp_path).search("anything", k=0)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        update_or_skip(bitseek.CodeIndex(tmp_path / "missing"))

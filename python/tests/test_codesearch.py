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


def test_encoder_none_is_followed_by_cli_and_mixing_is_refused(repo, cli):
    code = bitseek.CodeIndex(repo, encoder="none")
    update_or_skip(code)
    hits = code.search("where is the checksum verified", k=5)
    assert hits[0]["path"] == "store/checksum.py"
    # `bitseek search` follows the index's record (no head) and answers the same.
    want = cli_search(cli, repo, "where is the checksum verified")
    assert [(h["path"], h["line"]) for h in hits] == [(h["path"], h["line"]) for h in want]
    # Questions through the default head against an index built without one: refused, naming both.
    with pytest.raises(ValueError, match="without a code head"):
        bitseek.CodeIndex(repo).search("where is the checksum verified")
    with pytest.raises(ValueError, match="encoder"):
        bitseek.CodeIndex(repo, encoder="")


def test_adapter_none_is_followed_by_cli_and_mixing_is_refused(repo, cli):
    code = bitseek.CodeIndex(repo, adapter="none")
    update_or_skip(code)
    hits = code.search("where is the checksum verified", k=5)
    assert hits[0]["path"] == "store/checksum.py"
    # `bitseek search` follows the index's record (no adapter) and answers the same.
    want = cli_search(cli, repo, "where is the checksum verified")
    assert [(h["path"], h["line"]) for h in hits] == [(h["path"], h["line"]) for h in want]
    # Questions through the default (adapted) model against an index built without: refused.
    with pytest.raises(ValueError, match="without an adapter"):
        bitseek.CodeIndex(repo).search("where is the checksum verified")
    with pytest.raises(ValueError, match="adapter"):
        bitseek.CodeIndex(repo, adapter="")


def test_code_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index in"):
        bitseek.CodeIndex(tmp_path).search("anything")
    with pytest.raises(ValueError, match="0 is not allowed"):
        bitseek.CodeIndex(tmp_path).search("anything", k=0)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        update_or_skip(bitseek.CodeIndex(tmp_path / "missing"))


def test_search_follows_commits_by_another_process(repo, cli):
    code = bitseek.CodeIndex(repo)
    update_or_skip(code)
    # This object now holds the committed generation open.
    assert "net/http.py" in [h["path"] for h in code.search("download a web page", k=5)]
    (repo / "net" / "http.py").unlink()
    (repo / "net" / "mail.py").write_text(
        'def send_mail(to: str, body: str) -> None:\n'
        '    """Send an email message over SMTP."""\n'
        '    import smtplib\n'
        '    smtplib.SMTP("localhost").sendmail("me", [to], body)\n'
    )
    # Another process commits a new generation and deletes the old one's files.
    cli("index", repo)
    hits = code.search("send an email message", k=5)
    assert hits[0]["path"] == "net/mail.py"
    assert "net/http.py" not in [h["path"] for h in hits]
    want = cli_search(cli, repo, "send an email message")
    assert [(h["path"], h["line"]) for h in hits] == [(h["path"], h["line"]) for h in want]


def test_search_tests_like_cli(repo, cli):
    (repo / "tests").mkdir()
    (repo / "tests" / "test_http.py").write_text(
        "from net.http import fetch_page\n\n\n"
        "def test_fetch_page_retries_on_timeout():\n"
        '    """Retry the download when the server times out."""\n'
        '    assert fetch_page("http://localhost:1/slow")\n'
    )
    code = bitseek.CodeIndex(repo)
    update_or_skip(code)
    question = "retry the download when the server times out"
    by_default = code.search(question, k=5)
    plainly = code.search(question, k=5, tests=True)
    for got, flags in [(by_default, ()), (plainly, ("--tests",))]:
        want = cli_search(cli, repo, question, *flags)
        assert [(h["path"], h["line"], h["signature"]) for h in got] == [
            (h["path"], h["line"], h["signature"]) for h in want
        ]
        for g, w in zip(got, want):
            assert g["score"] == pytest.approx(w["score"], rel=1e-5)
    # The test says the question word for word: ranked plainly it comes first; by default it is
    # still returned, below the library function it tests.
    assert [h["path"] for h in plainly[:2]] == ["tests/test_http.py", "net/http.py"]
    # (How far below depends on the fusion: with the default adapter's light lexical leg, the
    # library units the semantic leg found come first.)
    paths = [h["path"] for h in by_default]
    assert paths[0] == "net/http.py" and "tests/test_http.py" in paths[1:]


def test_int8_update_without_vnni_warns(repo):
    # The kernels are chosen once per process, so the capped CPU runs in a child interpreter.
    import subprocess
    import sys

    if os.environ.get("BITSEEK_REQUIRE_MODEL") != "1":
        update_or_skip(bitseek.CodeIndex(repo))  # skips when no model
    child = """
import sys, warnings, bitseek
code = bitseek.CodeIndex(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    code.update(int8=True)
    code.update(int8=False)
print("\\n".join(f"{w.category.__name__}: {w.message}" for w in caught))
"""
    env = dict(os.environ, BITSEEK_KERNELS="avx2")
    out = subprocess.run([sys.executable, "-c", child, str(repo)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    # One warning: the int8 update, not the f32 one.
    assert len(lines) == 1 and lines[0].startswith("RuntimeWarning:"), out.stdout
    assert "no AVX-512 VNNI" in lines[0] and "update(int8=False)" in lines[0], out.stdout

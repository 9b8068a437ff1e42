"""The CLI and Python read each other's files and answer identically, and refuse alike."""

import json

import numpy as np
import pytest

import bitseek


def cli_query(cli, index, queries, k, *flags):
    out = cli("query", index, "--queries", queries, "-k", k, "--json", *flags).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    ids = np.array([[h["id"] for h in line["hits"]] for line in lines], dtype=np.uint64)
    scores = np.array([[h["score"] for h in line["hits"]] for line in lines], dtype=np.float32)
    return ids, scores


@pytest.mark.parametrize(
    "quantizer, metric, keep", [("rabitq", "cosine", "f32"), ("residual3", "l2", "int8"), ("sign", "dot", "none")]
)
def test_python_index_answers_cli_query(data, cli, tmp_path, quantizer, metric, keep):
    vectors, queries = data
    np.save(tmp_path / "q.npy", queries)
    index = bitseek.Index.build(vectors, quantizer=quantizer, metric=metric, keep=keep)
    index.save(tmp_path / "py.bitseek")
    for flags, kwargs in [((), {}), (("--no-rescore",), {"rescore": False}), (("--oversample", "2"), {"oversample": 2})]:
        want = cli_query(cli, tmp_path / "py.bitseek", tmp_path / "q.npy", 10, *flags)
        got = index.search(queries, k=10, **kwargs)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_cli_index_opens_in_python(data, cli, tmp_path):
    vectors, queries = data
    ids = np.arange(len(vectors), dtype=np.uint64)[::-1] * 5
    with open(tmp_path / "v.jsonl", "w") as f:
        for i, v in zip(ids, vectors):
            f.write(json.dumps({"id": int(i), "vector": v.tolist()}) + "\n")
    np.save(tmp_path / "q.npy", queries)
    built = json.loads(
        cli("build", "--input", tmp_path / "v.jsonl", "--quantizer", "residual2", "--metric", "dot",
            "--out", tmp_path / "cli.bitseek", "--json").stdout
    )
    index = bitseek.Index.open(tmp_path / "cli.bitseek")
    assert (len(index), index.dim, index.quantizer, index.metric) == (built["rows"], built["dim"], "residual2", "dot")
    assert index.bytes_per_vector == built["bytes_per_vector"]
    want = cli_query(cli, tmp_path / "cli.bitseek", tmp_path / "q.npy", 10)
    got = index.search(queries, k=10)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    # The same vectors built in Python with the same options give the same file contents' answers.
    same = bitseek.Index.build(vectors, quantizer="residual2", metric="dot", ids=ids)
    np.testing.assert_array_equal(same.search(queries, k=10)[0], want[0])


def cli_error(cli, *args):
    p = cli(*args, ok=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("bitseek: ")
    return p.stderr[len("bitseek: "):].strip()


def test_same_messages_as_cli(data, cli, tmp_path):
    vectors, queries = data
    bad = vectors[:50].copy()
    bad[7, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    message = cli_error(cli, "build", "--input", tmp_path / "bad.npy", "--out", tmp_path / "x.bitseek")
    with pytest.raises(ValueError) as e:
        bitseek.Index.build(bad)
    # The CLI names its file, Python the argument; the rest is the library's message.
    assert str(e.value) == message.replace(str(tmp_path / "bad.npy"), "vectors")
    assert not (tmp_path / "x.bitseek").exists()

    index = bitseek.Index.build(vectors[:100])
    index.save(tmp_path / "i.bitseek")
    np.save(tmp_path / "q40.npy", queries[:, :40])
    message = cli_error(cli, "query", tmp_path / "i.bitseek", "--queries", tmp_path / "q40.npy")
    with pytest.raises(ValueError) as e:
        index.search(queries[:, :40])
    assert str(e.value) == message.replace(str(tmp_path / "q40.npy"), "queries")

    (tmp_path / "junk.bitseek").write_bytes(b"not an index at all, just some bytes" * 4)
    message = cli_error(cli, "query", tmp_path / "junk.bitseek", "--queries", tmp_path / "q40.npy")
    with pytest.raises(bitseek.CorruptIndex) as e:
        bitseek.Index.open(tmp_path / "junk.bitseek")
    assert str(e.value) == message

    message = cli_error(cli, "query", tmp_path / "none.bitseek", "--queries", tmp_path / "q40.npy")
    with pytest.raises(FileNotFoundError) as e:
        bitseek.Index.open(tmp_path / "none.bitseek")
    assert str(e.value) == message

"""bitseek.Index against numpy brute force, and its refusals."""

import numpy as np
import pytest

import bitseek
from conftest import exact


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_full_rescore_is_exact(data, metric):
    # k * oversample >= rows: every vector is rescored from the f32 copy, so the top k is exact.
    vectors, queries = data
    index = bitseek.Index.build(vectors, metric=metric)
    ids, scores = index.search(queries, k=10, oversample=len(vectors) // 10)
    want_ids, want_scores = exact(vectors, queries, 10, metric)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


# Least recall@10 at oversample 8 on 48-dim Gaussian data (sign codes: 1 bit per dimension).
@pytest.mark.parametrize(
    "quantizer, least", [("rabitq", 0.8), ("sign", 0.5), ("residual2", 0.9), ("int8", 0.9)]
)
def test_recall_and_rescored_scores(data, quantizer, least):
    vectors, queries = data
    index = bitseek.Index.build(vectors, quantizer=quantizer)
    ids, scores = index.search(queries, k=10, oversample=8)
    want_ids, _ = exact(vectors, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want_ids)])
    assert recall >= least, (quantizer, recall)
    # Rescored scores are the exact cosines of the ids returned.
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cos = np.einsum("qd,qkd->qk", q, v[ids.astype(np.int64)])
    np.testing.assert_allclose(scores, cos, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "best first"


def test_codes_alone_differ_from_rescored(data):
    vectors, queries = data
    index = bitseek.Index.build(vectors, quantizer="sign")
    _, raw = index.search(queries, k=10, rescore=False)
    _, rescored = index.search(queries, k=10)
    assert raw.dtype == np.float32 and raw.shape == (len(queries), 10)
    assert not np.allclose(raw, rescored), "rescore=False ranks by the codes' estimate"


def test_layouts_and_float16_agree(data):
    vectors, queries = data
    c = bitseek.Index.build(vectors)
    f = bitseek.Index.build(np.asfortranarray(vectors))
    want = c.search(queries, k=5)
    for got in (f.search(queries, k=5), c.search(np.asfortranarray(queries), k=5)):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    h = bitseek.Index.build(vectors.astype(np.float16))
    ids, _ = h.search(queries.astype(np.float16), k=5)
    assert np.mean(ids == want[0]) > 0.8
    # A strided view (every other column) is read in row order, not memory order.
    s = bitseek.Index.build(vectors[:, ::2])
    np.testing.assert_array_equal(
        s.search(queries[:, ::2], k=5)[0],
        bitseek.Index.build(np.ascontiguousarray(vectors[:, ::2])).search(
            np.ascontiguousarray(queries[:, ::2]), k=5
        )[0],
    )


def test_ids_properties_and_round_trip(data, tmp_path):
    vectors, queries = data
    ids_in = np.arange(len(vectors), dtype=np.uint64) * 3 + 2**40
    index = bitseek.Index.build(vectors, quantizer="residual2", metric="dot", keep="int8", ids=ids_in)
    assert (len(index), index.dim, index.metric, index.quantizer, index.keep) == (
        2000, 48, "dot", "residual2", "int8")
    assert index.bytes_per_vector > 0
    np.testing.assert_array_equal(index.ids(), ids_in)
    ids, scores = index.search(queries, k=7)
    assert set(ids.ravel()) <= set(ids_in.tolist())
    path = tmp_path / "v.bitseek"
    size = index.save(path)
    assert size == path.stat().st_size
    again = bitseek.Index.open(str(path))
    ids2, scores2 = again.search(queries, k=7)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(scores2, scores)
    assert again.bytes_per_vector == index.bytes_per_vector


def test_padded_slots(data):
    vectors, queries = data
    index = bitseek.Index.build(vectors[:3], ids=[10, 20, 30])
    ids, scores = index.search(queries[:2], k=5)
    assert ids.shape == (2, 5) and ids.dtype == np.uint64 and scores.dtype == np.float32
    assert sorted(ids[0, :3].tolist()) == [10, 20, 30]
    assert np.all(ids[:, 3:] == bitseek.NO_ID) and bitseek.NO_ID == 2**64 - 1
    assert np.all(np.isnan(scores[:, 3:])) and not np.any(np.isnan(scores[:, :3]))


def test_threads_give_the_same_result(data):
    vectors, queries = data
    index = bitseek.Index.build(vectors)
    a = index.search(queries, k=10, threads=1)
    b = index.search(queries, k=10, threads=2)
    c = index.search(queries, k=10)
    for got in (b, c):
        np.testing.assert_array_equal(got[0], a[0])
        np.testing.assert_array_equal(got[1], a[1])
    with pytest.raises(ValueError, match="0 is not allowed"):
        index.search(queries, threads=0)


def bad(rows, col, value, dtype=np.float32):
    v = np.random.default_rng(1).standard_normal((5, 8)).astype(dtype)
    v[rows, col] = value
    return v


@pytest.mark.parametrize(
    "vectors, message",
    [
        (bad(3, 2, np.nan), "row 3, column 2 is NaN"),
        (bad(1, 0, np.inf), "row 1, column 0 is inf"),
        (bad(4, slice(None), 0.0), "row 4 is a zero vector"),
        (np.zeros((0, 8), np.float32), "contains no vectors"),
        (np.ones((4, 8), np.float64), "expected a 2-D float32 or float16 array, found a 2-D float64"),
        (np.ones(8, np.float32), "found a 1-D float32 array"),
    ],
)
def test_build_refusals(vectors, message, tmp_path):
    with pytest.raises(ValueError) as e:
        bitseek.Index.build(vectors)
    assert message in str(e.value)


def test_build_refuses_bad_options_and_ids():
    v = np.ones((3, 4), np.float32) + np.eye(3, 4, dtype=np.float32)
    for kwargs, message in [
        ({"metric": "hamming"}, 'unknown metric "hamming": expected cosine, dot or l2'),
        ({"keep": "f16"}, 'unknown --keep "f16"'),
        ({"quantizer": "pq"}, "learned:ENCODER_FILE"),
        ({"ids": [1, 2]}, "2 ids for 3 vectors"),
        ({"ids": [1, 2, 1]}, "id 1"),
    ]:
        with pytest.raises(ValueError) as e:
            bitseek.Index.build(v, **kwargs)
        assert message in str(e.value), (kwargs, str(e.value))
    with pytest.raises(TypeError):
        bitseek.Index.build([[1.0, 2.0]])


def test_search_refusals(data):
    vectors, queries = data
    index = bitseek.Index.build(vectors)
    cases = [
        (queries[:, :40], "dimension"),
        (np.zeros((1, 48), np.float32), "row 0 is a zero vector"),
        (np.full((1, 48), np.nan, np.float32), "row 0, column 0 is NaN"),
    ]
    for q, message in cases:
        with pytest.raises(ValueError) as e:
            index.search(q)
        assert message in str(e.value) and str(e.value).startswith("queries"), str(e.value)
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(queries, k=0)
    with pytest.raises(ValueError, match="oversample must be at least 1"):
        index.search(queries, oversample=0)


def test_file_errors(data, tmp_path):
    vectors, _ = data
    with pytest.raises(FileNotFoundError, match="No such file"):
        bitseek.Index.open(tmp_path / "missing.bitseek")
    path = tmp_path / "v.bitseek"
    bitseek.Index.build(vectors[:100]).save(path)
    raw = bytearray(path.read_bytes())
    for name, damaged, message in [
        ("magic", b"XXXX" + raw[4:], "not a bitseek index"),
        ("cut", raw[: len(raw) // 2], "truncated"),
        ("flip", raw[:-20] + bytes([raw[-20] ^ 0xFF]) + raw[-19:], "corrupt"),
    ]:
        p = tmp_path / f"{name}.bitseek"
        p.write_bytes(bytes(damaged))
        with pytest.raises(bitseek.CorruptIndex) as e:
            bitseek.Index.open(p)
        assert message in str(e.value) and isinstance(e.value, OSError), str(e.value)
    with pytest.raises(OSError, match="cannot write index"):
        bitseek.Index.build(vectors[:10]).save(tmp_path / "no" / "such" / "dir" / "v.bitseek")


def stderr_on_a_terminal(code):
    """Runs `code` in a child Python whose stderr is a pseudo-terminal; returns what it wrote."""
    import os
    import subprocess
    import sys

    master, slave = os.openpty()
    p = subprocess.Popen([sys.executable, "-c", code], stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait() == 0, out
    return out.decode(errors="replace")


def test_progress_bar_only_when_asked():
    code = (
        "import numpy as np, bitseek\n"
        "v = np.random.default_rng(0).standard_normal((200000, 32), dtype=np.float32)\n"
        "bitseek.Index.build(v, progress={})\n"
    )
    assert "encoding [" in stderr_on_a_terminal(code.format(True))
    assert stderr_on_a_terminal(code.format(False)) == ""


@pytest.mark.parametrize("kind, knob", [("graph", {"degree": 32}), ("ivf", {"lists": 16})])
def test_graph_and_ivf_indexes_are_exact_at_full_effort(data, kind, knob, tmp_path):
    # As `bitseek build --index graph --degree 32` / `--index ivf --lists 16`: at an effort that
    # covers every row (or list) and a full rescore, the exact answer; at the default, most of it.
    vectors, queries = data
    index = bitseek.Index.build(vectors, index=kind, **knob)
    assert index.kind == kind
    want, _ = exact(vectors, queries, 10)
    ids, _ = index.search(queries, k=10, oversample=len(vectors) // 10, effort=1 << 20)
    np.testing.assert_array_equal(ids, want)
    # The default effort is set for real embeddings; 48-d Gaussian noise has no neighbourhoods to
    # speak of (0.75-0.78 measured), so the floor here is lower.
    ids, _ = index.search(queries, k=10, oversample=8)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want)])
    assert recall >= 0.7, (kind, recall)
    path = tmp_path / f"{kind}.bitseek"
    index.save(path)
    again = bitseek.Index.open(path)
    assert again.kind == kind
    np.testing.assert_array_equal(again.search(queries, k=10, oversample=8)[0], ids)
    assert bitseek.Index.build(vectors).kind == "flat"


def test_index_kind_refusals(data):
    vectors, _ = data
    with pytest.raises(ValueError, match="not an index kind"):
        bitseek.Index.build(vectors, index="hnsw")
    with pytest.raises(ValueError, match="degree is for"):
        bitseek.Index.build(vectors, degree=32)
    with pytest.raises(ValueError, match="lists is for"):
        bitseek.Index.build(vectors, index="graph", lists=8)
    with pytest.raises(ValueError, match="multiple of 32"):
        bitseek.Index.build(vectors, index="graph", degree=33)
    with pytest.raises(ValueError, match="keep none"):
        bitseek.Index.build(vectors, index="graph", keep="none")

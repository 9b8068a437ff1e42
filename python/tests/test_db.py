"""bitseek.Db and Collection: the server's collections, against numpy brute force."""

import threading

import numpy as np
import pytest

import bitseek
from conftest import exact


def test_collection_round_trip(data, tmp_path):
    vectors, queries = data
    db = bitseek.Db(tmp_path / "db")
    col = db.create_collection("docs", dim=48, metric="cosine")
    assert db.collections() == ["docs"] and "docs" in db and col.name == "docs"
    ids = np.arange(1000, dtype=np.uint64) + 100
    payloads = [{"lang": "rust" if i % 3 == 0 else "go", "n": int(i)} for i in range(1000)]
    col.upsert(ids, vectors[:1000], payloads=payloads)
    assert len(col) == 1000
    col.checkpoint()  # a segment of codes, searched with rescoring
    col.upsert(ids[:5], vectors[1000:1005])  # replaced in the memtable, payload now null
    live = vectors[:1000].copy()
    live[:5] = vectors[1000:1005]

    got_ids, scores, got_payloads = col.search(queries, k=10, oversample=100)
    want, want_scores = exact(live, queries, 10)
    np.testing.assert_array_equal(got_ids, want + 100)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    for row_ids, row_payloads in zip(got_ids, got_payloads):
        for i, p in zip(row_ids, row_payloads):
            assert p == (None if i < 105 else payloads[int(i) - 100])

    rust = np.array([i % 3 == 0 and i >= 5 for i in range(1000)])
    got_ids, _, got_payloads = col.search(queries, k=10, oversample=100, filter={"field": "lang", "eq": "rust"})
    want, _ = exact(live[rust], queries, 10)
    np.testing.assert_array_equal(got_ids, np.flatnonzero(rust)[want] + 100)
    assert all(p["lang"] == "rust" for row in got_payloads for p in row)

    r = col.get(150)
    assert r["id"] == 150 and r["payload"] == payloads[50]
    np.testing.assert_allclose(r["vector"], vectors[50] / np.linalg.norm(vectors[50]), rtol=1e-5)
    assert col.get(99) is None

    assert col.delete([100, 101, 99]) == 2
    assert len(col) == 998 and col.get(100) is None
    report = col.compact()
    assert report["rows_after"] == 998
    col.flush()
    before = col.search(queries, k=5)[0]
    with pytest.raises(ValueError, match="in use by another bitseek process"):
        bitseek.Db(tmp_path / "db")
    del db, col  # releases the directory's lock
    again = bitseek.Db(tmp_path / "db")["docs"]
    assert len(again) == 998 and again.get(150)["payload"] == payloads[50]
    np.testing.assert_array_equal(again.search(queries, k=5)[0], before)


def test_padded_and_filtered_out(tmp_path):
    col = bitseek.Db(tmp_path).create_collection("c", dim=4, metric="dot")
    v = np.eye(4, dtype=np.float32)[:3]
    col.upsert([1, 2, 3], v, payloads=[{"t": "a"}, {"t": "b"}, {"t": "a"}])
    ids, scores, payloads = col.search(v[:1], k=5, filter={"field": "t", "in": ["a"]})
    assert ids[0, :2].tolist() == [1, 3] and np.all(ids[0, 2:] == bitseek.NO_ID)
    assert np.all(np.isnan(scores[0, 2:])) and payloads[0][2:] == [None, None, None]
    ids, _, _ = col.search(v[:1], k=2, filter={"field": "t", "eq": "zzz"})
    assert np.all(ids == bitseek.NO_ID)


def test_collection_refusals(tmp_path):
    db = bitseek.Db(tmp_path)
    col = db.create_collection("c", dim=4)
    with pytest.raises(ValueError, match="already exists"):
        db.create_collection("c", dim=4)
    with pytest.raises(ValueError, match="dimension 0 is out of range"):
        db.create_collection("d", dim=0)
    with pytest.raises(ValueError, match="unknown metric"):
        db.create_collection("d", dim=4, metric="cos")
    with pytest.raises(KeyError, match="no collection named"):
        db["nope"]
    ok = np.ones((2, 4), np.float32)
    zero = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="point 0 \\(id 1\\)"):
        col.upsert([1, 2], zero)
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        col.upsert([1, 2], np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="1 payloads for 2 vectors"):
        col.upsert([1, 2], ok, payloads=[{}])
    assert len(col) == 0, "nothing is written when input is refused"
    col.upsert([1, 2], ok + np.eye(2, 4, dtype=np.float32))
    with pytest.raises(ValueError, match="dimension 3 but the index has dimension 4"):
        col.search(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="k must be at least 1"):
        col.search(ok, k=0)
    with pytest.raises(ValueError, match="invalid filter"):
        col.search(ok, filter={"field": "x", "gt": 1})
    with pytest.raises(ValueError, match="filter field name is empty"):
        col.search(ok, filter={"field": "", "eq": 1})


def test_two_searchers_and_a_writer(data, tmp_path):
    vectors, queries = data
    col = bitseek.Db(tmp_path).create_collection("c", dim=48)
    col.upsert(np.arange(200, dtype=np.uint64), vectors[:200])
    errors = []
    done = threading.Event()

    def search():
        try:
            while not done.is_set():
                ids, scores, _ = col.search(queries, k=10)
                assert ids.shape == (len(queries), 10)
                assert not np.any(ids == bitseek.NO_ID)
        except Exception as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    searchers = [threading.Thread(target=search) for _ in range(2)]
    for t in searchers:
        t.start()
    for start in range(200, 2000, 100):
        col.upsert(np.arange(start, start + 100, dtype=np.uint64), vectors[start:start + 100],
                   payloads=[{"batch": start}] * 100)
    done.set()
    for t in searchers:
        t.join()
    assert errors == []
    assert len(col) == 2000
    for i in (0, 250, 1999):
        got = col.get(i)
        assert got is not None and (i < 200 or got["payload"] == {"batch": i // 100 * 100})
    ids, _, _ = col.search(vectors[1990:2000], k=1, oversample=100)
    np.testing.assert_array_equal(ids[:, 0], np.arange(1990, 2000))


def test_two_threads_search_one_index(data):
    vectors, queries = data
    index = bitseek.Index.build(vectors)
    want = index.search(queries, k=10, threads=1)
    results = []

    def run():
        for _ in range(20):
            results.append(index.search(queries, k=10, threads=1))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40
    for ids, scores in results:
        np.testing.assert_array_equal(ids, want[0])
        np.testing.assert_array_equal(scores, want[1])


def test_ivf_segments_and_effort_give_the_librarys_answer(data, tmp_path):
    vectors, queries = data
    db = bitseek.Db(tmp_path / "db")
    with pytest.raises(ValueError, match="not an index kind"):
        db.create_collection("x", dim=48, index="hnsw")
    col = db.create_collection("ivf", dim=48, metric="cosine", index="ivf", index_min_rows=500)
    col.upsert(np.arange(1000, dtype=np.uint64), vectors[:1000])
    col.checkpoint()
    assert col.wait_for_builds() is None
    assert col.info()["segment_indexes"] == ["ivf"]
    # Every list probed and every row rescored: the exact answer.
    got, _, _ = col.search(queries, k=10, oversample=100, effort=1 << 20)
    want, _ = exact(vectors[:1000], queries, 10)
    np.testing.assert_array_equal(got, want)
    # A few lists: the library's answer on the segment's own index file.
    (seg,) = [p for p in (tmp_path / "db" / "ivf").iterdir() if "-ivf-" in p.name]
    index = bitseek.Index.open(seg)
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)  # both normalise the same
    for effort in (1, 3):
        lib_ids, _ = index.search(unit, k=10, oversample=2, effort=effort)
        ours, _, _ = col.search(unit, k=10, oversample=2, effort=effort)
        np.testing.assert_array_equal(ours, lib_ids)
    with pytest.raises(ValueError, match="effort 0"):
        col.search(queries, k=10, effort=0)
    with pytest.raises(ValueError, match="effort must be at least 1"):
        index.search(queries, k=10, effort=0)


def test_graph_segments_answer_exactly_with_deletes(data, tmp_path):
    vectors, queries = data
    db = bitseek.Db(tmp_path / "db")
    with pytest.raises(ValueError, match="multiple of 32"):
        db.create_collection("x", dim=48, index="graph", index_degree=40)
    col = db.create_collection(
        "g", dim=48, metric="cosine", index="graph", index_min_rows=500, index_degree=64
    )
    assert col.info()["config"]["index"]["kind"] == "graph"
    assert col.info()["config"]["index"]["degree"] == 64
    col.upsert(np.arange(1000, dtype=np.uint64), vectors[:1000])
    col.checkpoint()
    assert col.wait_for_builds() is None
    assert col.info()["segment_indexes"] == ["graph"]
    # Every row walked and rescored: the exact answer, deleted rows skipped inside the walk.
    got, _, _ = col.search(queries, k=10, oversample=100, effort=1 << 20)
    want, _ = exact(vectors[:1000], queries, 10)
    np.testing.assert_array_equal(got, want)
    dead = np.arange(0, 1000, 3, dtype=np.uint64)
    assert col.delete(dead) == len(dead)
    alive = np.setdiff1d(np.arange(1000), dead)
    got, _, _ = col.search(queries, k=10, oversample=100, effort=1 << 20)
    want, _ = exact(vectors[alive], queries, 10)
    np.testing.assert_array_equal(got, alive[want])

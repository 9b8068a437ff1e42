"""bitseek.ray on a 2-node Ray cluster on loopback: sharded == single index, a killed actor and a
removed node, a build killed before its manifest, object storage (an S3 server on loopback),
bad input. Needs `pip install "./python[ray]" moto[server]`; skipped without Ray unless
BITSEEK_REQUIRE_RAY=1 (as scripts/test-ray.sh sets it)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

# Both nodes, the driver and the workers on 127.0.0.1: without this Ray turns "127.0.0.1" in an
# address into the machine's own address, which a sandbox may not route.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Credentials for the loopback S3 server (any will do), inherited by the nodes started below.
for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ.setdefault(key, "test")
if os.environ.get("BITSEEK_REQUIRE_RAY") != "1":
    pytest.importorskip("ray")
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import bitseek  # noqa: E402
import bitseek.ray as bray  # noqa: E402

DIM = 32
K = 10
# Each node has two "slot"s: shard actors asking for one fill the cluster, so those of a removed
# node wait (the gap a partial search sees) until a node joins.
WORKER = {"num_cpus": 8, "node_ip_address": "127.0.0.1", "resources": {"slot": 2}}


@pytest.fixture(scope="module")
def cluster():
    fast_failure = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 8,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "_system_config": fast_failure,
            "resources": {"slot": 2},
        },
    )
    worker = c.add_node(**WORKER)
    ray.init(address=c.address, _node_ip_address="127.0.0.1", log_to_driver=False)
    c.worker = worker
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def data():
    """Clustered vectors (as embeddings are) with payloads, and queries near them."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 20, 2000)] + 0.4 * rng.standard_normal((2000, DIM))
    x = x.astype(np.float32)
    q = (x[rng.integers(0, 2000, 16)] + 0.2 * rng.standard_normal((16, DIM))).astype(np.float32)
    return x, q


def exact_top(x, q, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :k]


# Rescoring every point a shard holds (k × oversample ≥ its points) makes both sides exact.
EXHAUSTIVE = 200


def test_sharded_search_equals_single_index(cluster, data, tmp_path):
    x, q = data
    uri = str(tmp_path / "idx")
    m = bray.build(x, uri, shards=4)
    assert m["points"] == len(x) and len(m["shards"]) == 4
    single = bitseek.Index.build(x, ids=np.arange(len(x), dtype=np.uint64))
    with bray.ShardedIndex(uri) as idx:
        stats = idx.stats()
        assert sum(s["points"] for s in stats) == len(x)
        assert len({s["node"] for s in stats}) == 2, "shards are spread over both nodes"
        ids, scores = idx.search(q, k=K, oversample=EXHAUSTIVE)
        want_ids, want_scores = single.search(q, k=K, oversample=EXHAUSTIVE)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(ids, exact_top(x, q, K))
        # The collection and the flat index compute the same cosine to within float rounding.
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
        one = idx.search(q[:1], k=K, oversample=EXHAUSTIVE)
        np.testing.assert_array_equal(one[0], ids[:1])
        # At the default oversampling each shard still answers its own rescored top k.
        ids4, _ = idx.search(q, k=K)
        assert (ids4 == exact_top(x, q, K)).mean() >= 0.9
    # Closing removes the actors' node-local copies.
    import tempfile

    local = os.path.join(tempfile.gettempdir(), "bitseek-ray")
    assert not [d for d in os.listdir(local) if d.startswith(tuple(m["shards"]))]
    # The merge is exact: one shard (one collection of every point) answers bit for bit alike.
    uri1 = str(tmp_path / "one")
    bray.build(x, uri1, shards=1)
    with bray.ShardedIndex(uri1) as one_shard:
        ids1, scores1 = one_shard.search(q, k=K, oversample=EXHAUSTIVE)
    np.testing.assert_array_equal(ids1, ids)
    np.testing.assert_array_equal(scores1, scores)


def test_ties_merge_in_single_collection_order(cluster, tmp_path):
    # Eight copies of one vector under different ids: every score ties; lower ids first.
    v = np.ones((8, 4), dtype=np.float32)
    uri = str(tmp_path / "ties")
    rows = bitseek.Db(str(tmp_path / "db")).create_collection("c", 4)
    rows.upsert(np.arange(8, dtype=np.uint64), v)
    want, _, _ = rows.search(v[:1], k=5)
    bray.build(v, uri, shards=4)  # ids 0..7, spread over the shards by their hash
    with bray.ShardedIndex(uri) as idx:
        got, scores = idx.search(v[:1], k=5)
        upserted = idx.upsert([700, 300], v[:2])
        got2, _ = idx.search(v[:1], k=10)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[0], np.arange(5))
    assert upserted == 2
    np.testing.assert_array_equal(got2[0], [0, 1, 2, 3, 4, 5, 6, 7, 300, 700])


def shard_holding(idx, point_id):
    from bitseek.ray._routing import shard_of

    return int(shard_of(np.array([point_id], dtype=np.uint64), len(idx.shards))[0])


def test_killed_actor_and_removed_node(cluster, data, tmp_path):
    x, q = data
    uri = str(tmp_path / "idx")
    bray.build(x, uri, shards=4)
    idx = bray.ShardedIndex(uri, resources={"slot": 1})
    try:
        # Acknowledged writes: new points far from the data, each its own direction.
        rng = np.random.default_rng(1)
        new = rng.standard_normal((40, DIM)).astype(np.float32) * 10
        new_ids = np.arange(100_000, 100_040, dtype=np.uint64)
        assert idx.upsert(new_ids, new, payloads=[{"n": int(i)} for i in new_ids]) == 40
        assert idx.delete(np.array([5, 6, 100_039], dtype=np.uint64)) == 3

        def check_writes():
            got, scores = idx.search(new[:39], k=1, oversample=EXHAUSTIVE)
            np.testing.assert_array_equal(got[:, 0], new_ids[:39])
            gone, _ = idx.search(new[39:], k=1, oversample=EXHAUSTIVE)
            assert gone[0, 0] != 100_039
            assert sum(s["points"] for s in idx.stats()) == len(x) + 40 - 3

        check_writes()
        after_writes = idx.search(q, k=K, oversample=EXHAUSTIVE)

        from bitseek.ray._routing import shard_of

        owner = shard_of(after_writes[0].ravel(), 4).reshape(after_writes[0].shape)

        def check_partial(ids, missing):
            # The others' hits, merged: the full answer without the missing shards' points.
            for r in range(len(q)):
                kept = after_writes[0][r][~np.isin(owner[r], missing)]
                np.testing.assert_array_equal(ids[r][: len(kept)], kept)

        # Kill one shard actor: Ray restarts it, and it replays its log.
        victim = shard_holding(idx, 100_000)
        old_pid = idx.stats()[victim]["pid"]
        ray.kill(idx.actors()[victim][0], no_restart=False)
        ids, _, missing = idx.search(q, k=K, oversample=EXHAUSTIVE, partial=True, timeout=1.0)
        assert missing in ([], [victim])  # a restart can beat a 1 s timeout
        check_partial(ids, missing)
        # The next search waits for the restart and is complete.
        full = idx.search(q, k=K, oversample=EXHAUSTIVE)
        np.testing.assert_array_equal(full[0], after_writes[0])
        st = idx.stats()[victim]
        assert st["pid"] != old_pid and st["log_replayed"] >= 1
        check_writes()

        # Remove the worker node: its shards have no slot left until a node joins, and a partial
        # search meanwhile names exactly them.
        worker_id = cluster.worker.node_id
        on_worker = sorted(s for s, st in enumerate(idx.stats()) if st["node"] == worker_id)
        assert len(on_worker) == 2, "SPREAD placed two shards on each node"
        cluster.remove_node(cluster.worker)
        for _ in range(10):  # a loaded machine may be slower than the timeout: ask again
            ids, _, missing = idx.search(q, k=K, oversample=EXHAUSTIVE, partial=True,
                                         timeout=3.0)
            if missing == on_worker:
                break
        assert missing == on_worker
        check_partial(ids, missing)
        cluster.worker = cluster.add_node(**WORKER)
        full = idx.search(q, k=K, oversample=EXHAUSTIVE, timeout=120)
        np.testing.assert_array_equal(full[0], after_writes[0])
        assert all(s["node"] != worker_id for s in idx.stats())
        check_writes()
    finally:
        idx.close()
        if cluster.worker not in cluster.worker_nodes:
            cluster.worker = cluster.add_node(**WORKER)


DRIVER = """
import os, signal, sys, numpy as np, ray
import bitseek.ray as bray, bitseek.ray._build as b
ray.init(address=sys.argv[1], _node_ip_address="127.0.0.1", log_to_driver=False)
x = np.random.default_rng(3).standard_normal((3000, 32)).astype(np.float32)
def die(*a, **k):  # the driver dies after every shard is published, before the manifest
    print("published:", sorted(os.listdir(sys.argv[2])), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
b._manifest.write = die
bray.build(x, sys.argv[2], shards=4)
"""


def test_build_killed_before_manifest(cluster, data, tmp_path):
    x, q = data
    uri = str(tmp_path / "idx")
    first = bray.build(x, uri, shards=4)

    def killed_build(target):
        p = subprocess.run([sys.executable, "-c", DRIVER, cluster.address, target],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
        assert "published:" in p.stdout

    killed_build(uri)
    # The second build's shards are there, finished, but nothing names them.
    manifest = json.loads((tmp_path / "idx" / "bitseek-sharded.json").read_text())
    assert manifest["build"] == first["build"]
    extra = sorted(set(os.listdir(uri)) - set(manifest["shards"]) - {"bitseek-sharded.json"})
    assert len(extra) == 4
    with bray.ShardedIndex(uri) as idx:
        assert len(idx) == len(x)
        ids, _ = idx.search(q, k=K, oversample=EXHAUSTIVE)
        np.testing.assert_array_equal(ids, exact_top(x, q, K))
    # Killed on a fresh uri: no manifest at all, and opening says so.
    fresh = str(tmp_path / "fresh")
    killed_build(fresh)
    assert not os.path.exists(os.path.join(fresh, "bitseek-sharded.json"))
    with pytest.raises(FileNotFoundError, match="bitseek-sharded.json is missing"):
        bray.ShardedIndex(fresh)


@pytest.fixture(scope="module")
def s3():
    """An S3-compatible server (moto) on loopback, and a bucket in it."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    uri = (f"s3://bitseek-test/idx?endpoint_override={host}:{port}&scheme=http"
           "&region=us-east-1&allow_bucket_creation=true")
    from bitseek.ray._store import Store

    Store(uri)._fs.create_dir("bitseek-test")
    yield uri
    server.stop()


def test_object_store(cluster, data, s3):
    x, q = data
    tags = [f"t{i % 3}" for i in range(len(x))]
    ds = ray.data.from_items(
        [{"id": i, "vector": x[i], "tag": tags[i]} for i in range(len(x))]
    )
    bray.build(ds, s3, shards=4)
    idx = bray.ShardedIndex(s3)
    try:
        sel = np.array([t == "t1" for t in tags])
        sub = bitseek.Index.build(x[sel], ids=np.flatnonzero(sel).astype(np.uint64))
        got, scores = idx.search(q, k=K, oversample=EXHAUSTIVE, filter={"field": "tag", "eq": "t1"})
        want, want_scores = sub.search(q, k=K, oversample=EXHAUSTIVE)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
        # A write acknowledged to the object store survives the actor.
        v = np.full((1, DIM), 3.0, dtype=np.float32)
        v[0, 0] = -50
        idx.upsert([9_999_999], v, payloads=[{"tag": "new"}])
        victim = shard_holding(idx, 9_999_999)
        ray.kill(idx.actors()[victim][0], no_restart=False)
        got, _ = idx.search(v, k=1, oversample=EXHAUSTIVE)
        assert got[0, 0] == 9_999_999
        assert idx.stats()[victim]["log_replayed"] == 1
        # Compaction publishes a new generation and drops the log it covers.
        idx.compact()
        from bitseek.ray._store import Store

        store = Store(s3)
        shard = idx.shards[victim]
        assert store.list(f"{shard}/log") == []
        ray.kill(idx.actors()[victim][0], no_restart=False)
        got, _ = idx.search(v, k=1, oversample=EXHAUSTIVE)
        assert got[0, 0] == 9_999_999
        assert idx.stats()[victim]["log_replayed"] == 0
    finally:
        idx.close()


def test_bad_input(cluster, data, tmp_path):
    x, q = data
    uri = str(tmp_path / "idx")
    bray.build(x[:500], uri, shards=4)
    with bray.ShardedIndex(uri) as idx:
        with pytest.raises(ValueError, match="dimension"):
            idx.search(q[:, :16], k=K)
        with pytest.raises(ValueError, match="dimension"):
            idx.upsert([1], q[:1, :16])
        bad = q[:2].copy()
        bad[1, 3] = np.nan
        with pytest.raises(ValueError, match="NaN|finite"):
            idx.upsert([1_000_000, 1_000_001], bad)
        assert len(idx) == 500, "a refused write changes no shard"
        with pytest.raises(ValueError, match="k"):
            idx.search(q, k=0)
    with pytest.raises(FileNotFoundError, match="missing"):
        bray.ShardedIndex(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="shards"):
        bray.build(x, str(tmp_path / "zero"), shards=0)
    with pytest.raises(ValueError, match="2-D"):
        bray.build(x[0], str(tmp_path / "flat"), shards=2)
    # A damaged shard: its segment cut short.
    shard = json.loads((tmp_path / "idx" / "bitseek-sharded.json").read_text())["shards"][2]
    seg = next(p for p in (tmp_path / "idx" / shard).iterdir() if p.name.startswith("seg-"))
    seg.write_bytes(seg.read_bytes()[:100])
    with pytest.raises(bitseek.CorruptIndex):
        bray.ShardedIndex(uri)


def test_serve_answers_like_bitseek_serve(cluster, data, tmp_path):
    import socket
    import urllib.error
    import urllib.request

    from ray import serve

    x, q = data
    uri = str(tmp_path / "vectors")
    bray.build(x, uri, shards=4)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    idx = bray.ShardedIndex(uri)  # the ingress shares these shard actors
    want_ids, want_scores = idx.search(q[:3], k=5)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        bray.serve(uri, route_prefix="/")
        base = f"http://127.0.0.1:{port}"

        def call(path, body=None):
            req = urllib.request.Request(base + path, method="GET" if body is None else "POST",
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, health = call("/health")
        assert status == 200 and health["status"] == "ok"
        status, one = call("/collections/vectors/search", {"vector": q[0].tolist(), "k": 5})
        assert status == 200
        assert [h["id"] for h in one["hits"]] == want_ids[0].tolist()
        np.testing.assert_allclose([h["score"] for h in one["hits"]], want_scores[0])
        assert set(one["hits"][0]) == {"id", "score", "payload"}
        status, batch = call("/collections/vectors/search/batch",
                             {"vectors": q[:3].tolist(), "k": 5})
        assert status == 200
        assert [[h["id"] for h in r["hits"]] for r in batch["results"]] == want_ids.tolist()
        status, err = call("/collections/vectors/search", {"vector": [1.0, 2.0], "k": 5})
        assert status == 400 and err["error"]["code"] == "bad_request"
        assert "dimension" in err["error"]["message"]
        status, err = call("/collections/other/search", {"vector": q[0].tolist()})
        assert status == 404
    finally:
        serve.shutdown()
        idx.close()


def test_build_from_npy_and_parquet_files(cluster, data, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, q = data
    x = x[:600]
    # Ray Data splits a read into at least 200 blocks by default: tasks a 2-core machine runs
    # one after another for these small files.
    ray.data.DataContext.get_current().read_op_min_num_blocks = 2
    np.save(tmp_path / "a.npy", x[:400])
    np.save(tmp_path / "b.npy", x[400:])
    m = bray.build([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], str(tmp_path / "npy"),
                   shards=2)
    assert m["points"] == len(x)
    with bray.ShardedIndex(str(tmp_path / "npy")) as idx:  # ids are positions across the files
        ids, _ = idx.search(q, k=K, oversample=EXHAUSTIVE)
    np.testing.assert_array_equal(ids, exact_top(x, q, K))
    ids_col = np.arange(len(x), dtype=np.uint64) * 7 + 3
    table = pa.table({"id": ids_col, "vector": list(x), "tag": [i % 2 for i in range(len(x))]})
    pq.write_table(table, tmp_path / "v.parquet")
    bray.build([str(tmp_path / "v.parquet")], str(tmp_path / "pq"), shards=2)
    with bray.ShardedIndex(str(tmp_path / "pq")) as idx:
        ids, _ = idx.search(q, k=K, oversample=EXHAUSTIVE, filter={"field": "tag", "eq": 1})
    odd = np.flatnonzero(np.arange(len(x)) % 2 == 1)
    want = odd[exact_top(x[odd], q, K)]
    np.testing.assert_array_equal(ids, ids_col[want])
    with pytest.raises(ValueError, match="all .npy"):
        bray.build([str(tmp_path / "a.npy"), str(tmp_path / "v.parquet")], str(tmp_path / "mix"))


def test_replicas_share_segments_and_take_writes(cluster, data, tmp_path):
    x, q = data
    uri = str(tmp_path / "idx")
    bray.build(x[:800], uri, shards=2)
    with bray.ShardedIndex(uri, replicas=2) as idx:
        assert [len(row) for row in idx.actors()] == [2, 2]
        stats = idx.stats()
        assert sorted((s["shard"], s["replica"]) for s in stats) == sorted(
            (name, r) for name in idx.shards for r in (0, 1))
        want = exact_top(x[:800], q, K)
        for _ in range(2):  # reads alternate between the replicas
            ids, _ = idx.search(q, k=K, oversample=EXHAUSTIVE)
            np.testing.assert_array_equal(ids, want)
        v = np.full((1, DIM), -7.0, dtype=np.float32)
        idx.upsert([424242], v)
        for _ in range(2):  # every replica has the acknowledged write
            got, _ = idx.search(v, k=1, oversample=EXHAUSTIVE)
            assert got[0, 0] == 424242
        idx.compact()  # the writer publishes; the other replica reopens the new generation
        for _ in range(2):
            got, _ = idx.search(v, k=1, oversample=EXHAUSTIVE)
            assert got[0, 0] == 424242
        gens = {(s["shard"], s["replica"]): s["generation"] for s in idx.stats()}
        for name in idx.shards:
            assert gens[(name, 0)] == gens[(name, 1)]

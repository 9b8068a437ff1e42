"""``bitseek.ray.build``: one collection per shard, written in parallel, published by a manifest.

The source is read in batches (by Ray Data for files and datasets, so reading and decoding run in
parallel across the cluster), each batch is split by the ids' shard, and each part goes to that
shard's build actor through Ray's object store. The build actors (one per shard, spread over the
nodes) insert and encode in parallel, then compact their shard into one segment and publish it
under ``uri``. Only when every shard is published does the driver write the manifest naming them,
in one atomic step: a build that dies before that leaves the previous manifest (or none) in
place, and its shard directories (new names, never named by a manifest) are garbage to delete.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

import bitseek

from . import _manifest
from ._routing import as_ids, shard_of
from ._shard import Shard
from ._store import Store

Batch = Tuple[np.ndarray, np.ndarray, Optional[List[Any]]]


def _rows(column: Any) -> np.ndarray:
    a = np.asarray(column)
    if a.dtype == object:
        a = np.stack([np.asarray(v) for v in a])
    if a.dtype not in (np.float32, np.float16):
        a = a.astype(np.float32)
    return a


def _dataset_batches(ds: Any, batch_rows: int, ids_column: bool) -> Iterator[Batch]:
    start = 0
    for b in ds.iter_batches(batch_size=batch_rows, batch_format="numpy"):
        if ids_column:
            if "id" not in b or "vector" not in b:
                raise ValueError(
                    f"source: a dataset needs columns \"id\" and \"vector\" (got {sorted(b)}); "
                    f"rename them, e.g. ds.rename_columns({{...}})"
                )
            vectors = _rows(b["vector"])
            ids = as_ids(b["id"])
            extra = [c for c in b if c not in ("id", "vector")]
            payloads = None
            if extra:
                cols = {c: np.asarray(b[c]).tolist() for c in extra}
                payloads = [{c: cols[c][i] for c in extra} for i in range(len(ids))]
        else:  # .npy files: one column of rows, ids by position
            (col,) = b.values()
            vectors = _rows(col)
            ids = np.arange(start, start + len(vectors), dtype=np.uint64)
            payloads = None
        start += len(vectors)
        yield ids, vectors, payloads


def _batches(source: Any, batch_rows: int) -> Iterator[Batch]:
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ValueError(
                f"source: expected a 2-D array of vectors (n, dim), got shape {source.shape}"
            )
        for start in range(0, len(source), batch_rows):
            chunk = source[start : start + batch_rows]
            yield np.arange(start, start + len(chunk), dtype=np.uint64), chunk, None
        return
    import ray.data

    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if isinstance(source, (list, tuple)):
        paths = [os.fspath(p) for p in source]
        if not paths:
            raise ValueError("source: the list of files is empty")
        kinds = {os.path.splitext(p)[1].lower() for p in paths}
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # .npy ids are positions
        if kinds == {".npy"}:
            yield from _dataset_batches(ray.data.read_numpy(paths), batch_rows, False)
        elif kinds == {".parquet"}:
            yield from _dataset_batches(ray.data.read_parquet(paths), batch_rows, True)
        else:
            raise ValueError(
                f"source: files must be all .npy (vectors, ids by position) or all .parquet "
                f"(columns \"id\" and \"vector\"), got {sorted(kinds)}"
            )
        return
    if isinstance(source, ray.data.Dataset):
        yield from _dataset_batches(source, batch_rows, True)
        return
    raise ValueError(
        f"source: expected a numpy array, a list of .npy/.parquet paths or a ray.data.Dataset, "
        f"got {type(source).__name__}"
    )


def build(
    source: Any,
    uri: str,
    shards: int = 8,
    quantizer: str = "rabitq",
    keep: str = "f32",
    metric: str = "cosine",
    batch_rows: int = 16384,
    num_cpus: float = 1,
) -> Dict[str, Any]:
    """Builds a sharded index of ``source`` under ``uri``; returns its manifest."""
    import ray

    from ._index import _call

    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 65536:
        raise ValueError(f"shards is {shards!r}; give a whole number from 1 to 65536")
    store = Store(uri)
    started = time.perf_counter()
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    names = [f"{build_id}-shard-{i:04d}" for i in range(shards)]
    batches = _batches(source, batch_rows)
    first = next(batches, None)
    if first is None or len(first[0]) == 0:
        raise ValueError("source: no vectors to index; give at least one")
    ids, vectors, _ = first
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise ValueError(f"source: expected vectors (n, dim), got shape {vectors.shape}")
    dim = int(vectors.shape[1])
    settings = {"dim": dim, "metric": metric, "quantizer": quantizer, "keep": keep}
    if not ray.is_initialized():
        ray.init()
    actor = ray.remote(Shard).options(
        num_cpus=num_cpus, scheduling_strategy="SPREAD", max_concurrency=2
    )
    builders = [actor.remote(uri, n, 0, "build", settings) for n in names]
    try:
        # Collection settings are checked once, before any data moves.
        _call(builders[0].stats.remote())
        points = 0
        inflight: List[Any] = []

        def send(batch: Batch) -> None:
            nonlocal inflight, points
            ids, vectors, payloads = batch
            if vectors.ndim != 2 or vectors.shape[1] != dim:
                raise ValueError(
                    f"source: vectors of dimension {vectors.shape[1:]} after {points} vectors "
                    f"of dimension {dim}; every vector needs the same dimension"
                )
            owner = shard_of(ids, shards)
            for s in range(shards):
                rows = np.flatnonzero(owner == s)
                if rows.size == 0:
                    continue
                p = None if payloads is None else [payloads[i] for i in rows]
                inflight.append(builders[s].upsert.remote(ids[rows], vectors[rows], p))
            points += len(ids)
            if len(inflight) > 4 * shards:  # bounded memory: wait for the oldest parts
                done, inflight = ray.wait(inflight, num_returns=len(inflight) - 2 * shards)
                _call(done)

        send(first)
        for batch in batches:
            send(batch)
        _call(inflight)
        stats = _call([b.finish.remote() for b in builders])
        old = _manifest.read(store)["shards"] if store.exists(_manifest.MANIFEST) else []
        manifest = _manifest.write(store, build_id, names, settings, points)
    except BaseException:
        for n in names:  # best effort: nothing names them
            try:
                store.delete(n)
            except Exception:
                pass
        raise
    finally:
        try:
            ray.get([b.close.remote() for b in builders], timeout=30)
        except Exception:
            pass
        for b in builders:
            ray.kill(b)
    for n in old:  # the previous build's shards, no longer named
        store.delete(n)
    manifest["build_seconds"] = time.perf_counter() - started
    manifest["shard_stats"] = stats
    return manifest

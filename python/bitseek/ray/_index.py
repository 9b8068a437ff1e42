"""``bitseek.ray.ShardedIndex``: one Ray actor per shard and replica; fan-out search, exact merge.

Ray places the actors (spread over the nodes), restarts them when their process or node dies
(``max_restarts``) and retries the calls that were in flight; a restarted actor reopens its shard
from ``uri``, replaying the shard's log, so every acknowledged write is back. Actors are named
after the shard and replica, so every ``ShardedIndex`` of one ``uri`` in a cluster (a driver, the
Serve replicas) shares them, and each shard keeps a single writer (replica 0).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np

import bitseek

from . import _manifest
from ._routing import as_ids, merge, shard_of
from ._shard import Shard
from ._store import Store

NAMESPACE = "bitseek"


def _call(refs: Any, timeout: Optional[float] = None) -> Any:
    """``ray.get``, raising a shard's library error as itself (``ValueError``, ``CorruptIndex``,
    ...) rather than wrapped in Ray's ``RayTaskError``."""
    import ray
    from ray.exceptions import RayTaskError

    try:
        return ray.get(refs, timeout=timeout)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise


class ShardedIndex:
    """The sharded index under ``uri``; see the module docs.

    ``replicas``: actors per shard (reads go to any live one; writes to replica 0, which
    forwards nothing itself: this object applies acknowledged writes to the other replicas).
    ``num_cpus``, ``resources``: what Ray reserves for each actor (e.g. ``{"bitseek": 1}`` with
    ``ray start --resources='{"bitseek": 4}'`` on the nodes meant to hold shards).
    ``max_restarts``: how often Ray restarts a shard actor (-1: without limit).
    """

    def __init__(self, uri: str, replicas: int = 1, num_cpus: float = 1,
                 resources: Optional[Dict[str, float]] = None, max_restarts: int = -1) -> None:
        import ray

        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
            raise ValueError(f"replicas is {replicas!r}; give a whole number of at least 1")
        self.uri = uri
        self._store = Store(uri)
        self.manifest = _manifest.read(self._store)
        self.shards: List[str] = list(self.manifest["shards"])
        self.dim = int(self.manifest["dim"])
        self.metric = str(self.manifest["metric"])
        if not ray.is_initialized():
            ray.init()
        tag = hashlib.sha1(uri.encode()).hexdigest()[:8]
        actor = ray.remote(Shard)
        self._actors: List[List[Any]] = []
        for name in self.shards:
            row = []
            for r in range(replicas):
                row.append(
                    actor.options(
                        name=f"{tag}/{name}/{r}",
                        namespace=NAMESPACE,
                        get_if_exists=True,
                        max_restarts=max_restarts,
                        max_task_retries=-1,
                        max_concurrency=8,
                        num_cpus=num_cpus,
                        resources=resources,
                        scheduling_strategy="SPREAD",
                    ).remote(uri, name, r, "writer" if r == 0 else "reader")
                )
            self._actors.append(row)
        self._turn = itertools.count()
        # Open every shard now, so a missing or damaged one is reported here, as itself.
        _call([a.ping.remote() for row in self._actors for a in row])
        _call([a.stats.remote() for row in self._actors for a in row])

    def __len__(self) -> int:
        return sum(s["points"] for s in self.stats() if s["replica"] == 0)

    def close(self) -> None:
        """Stops this index's shard actors (shared with every other ``ShardedIndex`` of this
        ``uri`` in the cluster); acknowledged writes stay under ``uri``."""
        import ray

        handles = [a for row in self._actors for a in row]
        try:  # their local copies; a dead actor's is removed by its successor on that node
            ray.get([a.close.remote() for a in handles], timeout=30)
        except Exception:
            pass
        for a in handles:
            ray.kill(a, no_restart=True)
        self._actors = []

    def __enter__(self) -> "ShardedIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def actors(self) -> List[List[Any]]:
        """The shard actors' handles: ``actors()[shard][replica]``."""
        return [list(row) for row in self._actors]

    # ---- search --------------------------------------------------------------------------

    def _pick(self, shard: int) -> Any:
        row = self._actors[shard]
        return row[next(self._turn) % len(row)]

    def _gather(self, submit: Any, timeout: Optional[float],
                partial: bool) -> Tuple[Dict[int, Any], List[int]]:
        """Runs ``submit(actor)`` on a replica of every shard; returns the answers by shard and
        the shards that did not answer within ``timeout`` (an error unless ``partial``)."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        deadline = None if timeout is None else time.monotonic() + timeout
        pending = {submit(self._pick(s)): s for s in range(len(self.shards))}
        done: Dict[int, Any] = {}
        while pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=left)
            for ref in ready:
                s = pending.pop(ref)
                try:
                    done[s] = _call(ref)
                except (RayActorError, ActorUnavailableError):
                    # The replica died and will not answer this call: ask another (or the
                    # same one, restarted) until the deadline.
                    if deadline is not None and time.monotonic() >= deadline:
                        continue
                    time.sleep(0.05)
                    pending[submit(self._pick(s))] = s
            if deadline is not None and time.monotonic() >= deadline:
                break
        missing = sorted(set(range(len(self.shards))) - set(done))
        if missing and not partial:
            raise TimeoutError(
                f"shards {missing} ({', '.join(self.shards[s] for s in missing)}) did not answer "
                f"within {timeout} s (their actors are restarting, or no node can hold them): "
                f"search again later, raise timeout, or pass partial=True to get the other "
                f"shards' hits"
            )
        for ref in pending:
            ray.cancel(ref)
        return done, missing

    @overload
    def search(self, queries: Any, k: int = ..., oversample: Optional[float] = ...,
               filter: Optional[Dict[str, Any]] = ..., partial: Literal[False] = ...,
               timeout: Optional[float] = ...) -> Tuple[np.ndarray, np.ndarray]: ...

    @overload
    def search(self, queries: Any, k: int = ..., oversample: Optional[float] = ...,
               filter: Optional[Dict[str, Any]] = ..., *, partial: Literal[True],
               timeout: Optional[float] = ...) -> Tuple[np.ndarray, np.ndarray, List[int]]: ...

    def search(
        self,
        queries: Any,
        k: int = 10,
        oversample: Optional[float] = 4,
        filter: Optional[Dict[str, Any]] = None,
        partial: bool = False,
        timeout: Optional[float] = 60.0,
    ) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, List[int]]]:
        """The best ``k`` points for each row of ``queries``: ``(ids, scores)``, as one
        collection of all the points answers. Each shard answers its own exact top ``k``; the
        merge keeps the best ``k``. A shard that does not answer within ``timeout`` seconds is a
        ``TimeoutError``; with ``partial=True`` the answer is ``(ids, scores, missing)``, from
        the shards that did answer, ``missing`` listing the others (by position in the
        manifest)."""
        ids, scores, _, missing = self._search(queries, k, oversample, filter, partial, timeout,
                                               payloads=False)
        return (ids, scores, missing) if partial else (ids, scores)

    def _search(self, queries: Any, k: int, oversample: Optional[float],
                filter: Optional[Dict[str, Any]], partial: bool, timeout: Optional[float],
                payloads: bool) -> Tuple[np.ndarray, np.ndarray, Optional[List[List[Any]]],
                                         List[int]]:
        import ray

        q = queries if isinstance(queries, np.ndarray) else np.asarray(queries, dtype=np.float32)
        q_ref = ray.put(q)
        done, missing = self._gather(
            lambda a: a.search.remote(q_ref, k, oversample, filter, payloads), timeout, partial
        )
        if not done:
            n = q.shape[0] if q.ndim == 2 else 1
            empty_ids = np.full((n, k), bitseek.NO_ID, dtype=np.uint64)
            return empty_ids, np.full((n, k), np.nan, np.float32), [[None] * k] * n, missing
        parts = [done[s] for s in sorted(done)]
        ids, scores, pl = merge(
            [(p[0], p[1]) for p in parts],
            k,
            self.metric == "l2",
            [p[2] for p in parts] if payloads else None,
        )
        return ids, scores, pl, missing

    # ---- writes --------------------------------------------------------------------------

    def _check(self, ids: Any, vectors: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Checks the whole write with the library's own checks before any shard applies its
        part, so a refused write changes no shard."""
        ids = as_ids(ids)
        v = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2:
            raise ValueError(f"vectors: expected a 2-D array (n, dim), got shape {v.shape}")
        if v.shape[1] != self.dim:
            raise ValueError(
                f"dimension mismatch: the index holds vectors of dimension {self.dim}, got "
                f"{v.shape[1]}"
            )
        if len(ids) != len(v):
            raise ValueError(
                f"vectors: {len(ids)} ids for {len(v)} vectors; give exactly one id per vector"
            )
        if len(v):
            # The library's vector checks (dtype, NaN/inf, zero vectors under cosine).
            bitseek.Index.build(v, quantizer="sign", metric=self.metric, keep="none")
        return ids, v

    def upsert(self, ids: Any, vectors: Any, payloads: Optional[Sequence[Any]] = None) -> int:
        """Inserts or replaces points, routed by id to their shard's writer; returns when every
        point is durable under ``uri`` (then the other replicas are brought up to date)."""
        ids, v = self._check(ids, vectors)
        if payloads is not None:
            payloads = list(payloads)
            if len(payloads) != len(ids):
                raise ValueError(
                    f"payloads: {len(payloads)} payloads for {len(ids)} vectors; give one per "
                    f"vector (or None)"
                )
        return sum(self._write("upsert", ids, v, payloads))

    def delete(self, ids: Any) -> int:
        """Deletes points; returns how many of them existed."""
        return sum(self._write("delete", as_ids(ids), None, None))

    def _write(self, op: str, ids: np.ndarray, v: Optional[np.ndarray],
               payloads: Optional[List[Any]]) -> List[int]:
        owner = shard_of(ids, len(self.shards))
        parts = []
        for s in range(len(self.shards)):
            rows = np.flatnonzero(owner == s)
            if rows.size:
                args: Tuple[Any, ...] = (ids[rows],)
                if op == "upsert":
                    assert v is not None
                    args += (v[rows], None if payloads is None else [payloads[i] for i in rows])
                parts.append((s, args))
        counts = _call([getattr(self._actors[s][0], op).remote(*a) for s, a in parts])
        _call([getattr(r, op).remote(*a) for s, a in parts for r in self._actors[s][1:]])
        return counts

    def compact(self) -> List[Dict[str, Any]]:
        """Compacts every shard into one segment and publishes it under ``uri``; returns each
        shard's report."""
        reports = _call([row[0].compact.remote() for row in self._actors])
        _call([r.reload.remote() for row in self._actors for r in row[1:]])
        return reports

    def stats(self) -> List[Dict[str, Any]]:
        """Per shard and replica: points, segments, bytes, generation, actor and node ids."""
        return _call([a.stats.remote() for row in self._actors for a in row])

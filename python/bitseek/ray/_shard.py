"""One shard: a bitseek live collection, held by one Ray actor, kept durable under ``uri``.

Under ``uri/<shard>/`` a shard is a bitseek collection directory (``manifest.json``, its
immutable ``seg-*``, ``payloads-*``, ``tombstones-*`` and ``wal-*`` files) plus ``log/``: one
object per acknowledged write since that manifest, named ``<generation>-<sequence>.npz``. The
actor works on a copy in a node-local directory (segments are hard-linked when ``uri`` is on the
same filesystem, so replicas share them) and:

- **opens** by fetching the files the manifest names and replaying the ``log/`` objects of the
  manifest's generation in order: that is how a restarted actor, on any node, gets back every
  acknowledged write;
- **writes** (the shard's single writer, replica 0) apply to the local collection first (which
  checks them: nothing is logged that the library refuses), then put the write's log object, and
  only then acknowledge;
- **compacts** locally, uploads the new generation's files, replaces ``manifest.json`` (the one
  atomic step), then deletes the older log objects and files.

Readers (replicas 1..) open the same way and apply the writes the index forwards to them after
the writer has acknowledged them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import bitseek

from ._store import Store

#: The collection's name inside the actor's local database directory.
_NAME = "points"


def _collection_files(manifest: Dict[str, Any]) -> List[str]:
    """The files a collection manifest names, besides itself."""
    files = []
    for seg in manifest.get("segments", []):
        files.append(seg["file"])
        if seg.get("payloads"):
            files.append(seg["payloads"]["file"])
    if manifest.get("payloads"):
        files.append(manifest["payloads"]["file"])
    if manifest.get("tombstones"):
        files.append(manifest["tombstones"]["file"])
    if manifest.get("log"):
        files.append(manifest["log"]["file"])
    return files


def _immutable(name: str) -> bool:
    return not (name == "manifest.json" or name.startswith("wal-"))


def _encode_log(op: str, ids: np.ndarray, vectors: Optional[np.ndarray], payloads: Any) -> bytes:
    buf = io.BytesIO()
    arrays = {"op": np.array(op), "ids": np.asarray(ids, dtype=np.uint64)}
    if vectors is not None:
        arrays["vectors"] = np.ascontiguousarray(vectors)
    if payloads is not None:
        arrays["payloads"] = np.array(json.dumps(payloads))
    np.savez(buf, **arrays)
    return buf.getvalue()


def _local_dir(shard_path: str, replica: int) -> str:
    """A new working directory for the shard's copy on this node. One actor at a time holds a
    shard's replica, so earlier directories of the same replica are a dead actor's: removed."""
    base = os.path.join(tempfile.gettempdir(), "bitseek-ray")
    os.makedirs(base, exist_ok=True)
    prefix = f"{os.path.basename(shard_path)}-r{replica}-"
    for stale in os.listdir(base):
        if stale.startswith(prefix):
            shutil.rmtree(os.path.join(base, stale), ignore_errors=True)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


class Shard:
    """A shard's collection in one actor; see the module docs. ``role``: ``"writer"``,
    ``"reader"`` or ``"build"`` (a new, empty shard written once and published by ``finish``)."""

    def __init__(self, uri: str, shard: str, replica: int = 0, role: str = "writer",
                 config: Optional[Dict[str, Any]] = None) -> None:
        self.uri, self.shard, self.replica, self.role = uri, shard, replica, role
        self.config = config
        self._store = Store(uri)
        self._lock = threading.Lock()
        self._c: Optional[bitseek.Collection] = None
        self._db: Optional[bitseek.Db] = None
        self._dir: Optional[str] = None
        self._generation = 0
        self._next_seq = 0
        self.replayed = 0

    # ---- opening -------------------------------------------------------------------------

    def _open(self) -> bitseek.Collection:
        if self._c is not None:
            return self._c
        with self._lock:
            if self._c is None:
                self._open_locked()
        assert self._c is not None
        return self._c

    def _open_locked(self) -> None:
        self._dir = _local_dir(self.shard, self.replica)
        root = os.path.join(self._dir, "db")
        if self.role == "build":
            cfg = dict(self.config or {})
            self._db = bitseek.Db(root)
            self._c = self._db.create_collection(_NAME, **cfg)
            return
        # A concurrent compaction may delete the files of the manifest just read: read again.
        for attempt in range(5):
            try:
                self._fetch(os.path.join(root, _NAME))
                break
            except FileNotFoundError:
                if attempt == 4 or not self._store.exists(f"{self.shard}/manifest.json"):
                    raise
                shutil.rmtree(root, ignore_errors=True)
                time.sleep(0.2)
        self._db = bitseek.Db(root)
        c = self._db[_NAME]
        self._replay(c)
        self._c = c

    def _fetch(self, local: str) -> None:
        os.makedirs(local, exist_ok=True)
        raw = self._store.get(f"{self.shard}/manifest.json")
        try:
            manifest = json.loads(raw)
        except ValueError as e:
            raise bitseek.CorruptIndex(
                f"{self.uri}/{self.shard}/manifest.json is not JSON ({e}); restore the shard "
                f"from a copy or rebuild the index"
            ) from None
        for name in _collection_files(manifest):
            self._store.fetch(f"{self.shard}/{name}", os.path.join(local, name),
                              link=_immutable(name))
        with open(os.path.join(local, "manifest.json"), "wb") as f:
            f.write(raw)
        self._generation = int(manifest.get("generation", 0))

    def _log_names(self) -> List[Tuple[int, int, str]]:
        out = []
        for name in self._store.list(f"{self.shard}/log"):
            stem = name[: -len(".npz")] if name.endswith(".npz") else None
            parts = stem.split("-") if stem else []
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                out.append((int(parts[0]), int(parts[1]), name))
        return sorted(out)

    def _replay(self, c: bitseek.Collection) -> None:
        for gen, seq, name in self._log_names():
            self._next_seq = max(self._next_seq, seq + 1)
            if gen != self._generation:
                continue  # covered by the manifest; its deletion was cut short
            with np.load(io.BytesIO(self._store.get(f"{self.shard}/log/{name}")),
                         allow_pickle=False) as z:
                op = str(z["op"])
                if op == "upsert":
                    payloads = json.loads(str(z["payloads"])) if "payloads" in z else None
                    c.upsert(z["ids"], z["vectors"], payloads)
                elif op == "delete":
                    c.delete(z["ids"])
                else:
                    raise bitseek.CorruptIndex(
                        f"{self.uri}/{self.shard}/log/{name}: unknown operation {op!r}"
                    )
            self.replayed += 1

    # ---- writes --------------------------------------------------------------------------

    def _log(self, op: str, ids: np.ndarray, vectors: Optional[np.ndarray],
             payloads: Any) -> None:
        if self.role != "writer":
            return
        name = f"{self._generation:012d}-{self._next_seq:012d}.npz"
        self._store.put(f"{self.shard}/log/{name}", _encode_log(op, ids, vectors, payloads))
        self._next_seq += 1

    def upsert(self, ids: np.ndarray, vectors: np.ndarray,
               payloads: Optional[Sequence[Any]] = None) -> int:
        """Inserts or replaces points; durable under ``uri`` on return (writer)."""
        c = self._open()
        with self._lock:
            c.upsert(ids, vectors, payloads)
            self._log("upsert", ids, vectors, None if payloads is None else list(payloads))
        return len(ids)

    def delete(self, ids: np.ndarray) -> int:
        """Deletes points; returns how many existed."""
        c = self._open()
        with self._lock:
            n = c.delete(ids)
            self._log("delete", ids, None, None)
        return n

    def compact(self) -> Dict[str, Any]:
        """Merges the shard into one segment and publishes it under ``uri`` (writer, build)."""
        c = self._open()
        with self._lock:
            report = c.compact()
            if self.role in ("writer", "build"):
                self._publish(c)
        return report

    def finish(self) -> Dict[str, Any]:
        """Build: compacts and publishes the new shard; returns its stats."""
        self.compact()
        return self.stats()

    def _publish(self, c: bitseek.Collection) -> None:
        assert self._dir is not None
        local = os.path.join(self._dir, "db", _NAME)
        with open(os.path.join(local, "manifest.json"), "rb") as f:
            raw = f.read()
        manifest = json.loads(raw)
        files = _collection_files(manifest)
        have = set(self._store.list(self.shard))
        for name in files:
            if name not in have or not _immutable(name):
                self._store.put_file(f"{self.shard}/{name}", os.path.join(local, name))
        # The one atomic step: from here on, opening reads the new generation.
        self._store.put(f"{self.shard}/manifest.json", raw)
        old_generation = self._generation
        self._generation = int(manifest["generation"])
        for gen, _seq, name in self._log_names():
            if gen <= old_generation:
                self._store.delete(f"{self.shard}/log/{name}")
        keep = set(files) | {"manifest.json"}
        for name in have:
            if name not in keep:
                self._store.delete(f"{self.shard}/{name}")

    def reload(self) -> None:
        """Reader: drops the local copy and opens the published shard again."""
        with self._lock:
            self._close()
        self._open()

    def close(self) -> None:
        """Removes this actor's local copy (before the actor is stopped)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._c = None
        self._db = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # ---- reads ---------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, oversample: Optional[float],
               filter: Optional[Dict[str, Any]], payloads: bool = False) -> Tuple[Any, ...]:
        """This shard's exact rescored top ``k`` for each query."""
        ids, scores, pl = self._open().search(queries, k=k, oversample=oversample, filter=filter)
        return (ids, scores, pl) if payloads else (ids, scores)

    def get(self, id: int) -> Optional[Dict[str, Any]]:
        return self._open().get(id)

    def stats(self) -> Dict[str, Any]:
        """Points, segments, bytes, and where this actor runs."""
        info = self._open().info()
        out = {
            "shard": self.shard,
            "replica": self.replica,
            "points": info["points"],
            "segments": info["segments"],
            "bytes": info["size_bytes"],
            "generation": self._generation,
            "log_replayed": self.replayed,
            "pid": os.getpid(),
        }
        try:
            import ray

            ctx = ray.get_runtime_context()
            out["actor"] = ctx.get_actor_id()
            out["node"] = ctx.get_node_id()
        except Exception:  # not inside Ray
            out["actor"] = out["node"] = None
        return out

    def ping(self) -> bool:
        return True

    def __del__(self) -> None:
        try:
            self._close()
        except Exception:
            pass

"""bitseek past one machine, on Ray: sharded build, fan-out search with an exact merge, durable
writes, and recovery from lost actors and nodes.

>>> import ray, bitseek.ray as bray                                     # doctest: +SKIP
>>> bray.build(vectors, "s3://bucket/index", shards=8)                 # doctest: +SKIP
>>> idx = bray.ShardedIndex("s3://bucket/index")                       # doctest: +SKIP
>>> ids, scores = idx.search(queries, k=10)                            # doctest: +SKIP

Ray places one actor per shard and replica, restarts them when a process or node dies, runs the
parallel reads of a build (Ray Data) and serves HTTP (Ray Serve). bitseek keeps the formats,
the encoding, the search and the rescoring: each shard is a bitseek collection under ``uri``
(a directory every node can read, or an object store through pyarrow's filesystems), answering
its own exact top ``k``, so the merged answer is the one a single collection of all the points
gives.

``uri`` holds ``bitseek-sharded.json`` (the manifest, written last and atomically by ``build``)
and one directory per shard: a bitseek collection (``manifest.json`` and immutable segment
files) plus ``log/``, one object per acknowledged write since that manifest.

Handled: a shard actor's process or node dying (Ray restarts the actor; it reopens its shard from
``uri`` and replays its log; searches wait for it up to ``timeout``, or answer without it with
``partial=True``); a build dying before its manifest (nothing of it is visible). Not handled
here: the head node's failure (Ray's GCS fault tolerance), the durability and replication of
``uri`` itself (the object store's or the shared filesystem's), and two writers of one shard
(only if Ray ever ran two copies of one actor at once, e.g. across a network partition).
"""

from ._build import build
from ._index import ShardedIndex
from ._serve import serve

__all__ = ["ShardedIndex", "build", "serve"]

"""Which shard holds an id, and merging the shards' answers into one.

Routing is ``splitmix64(id) mod shards`` (the manifest names it), so ids spread evenly whatever
their pattern, and any process computes the owner of an id without asking anyone.

Every shard answers its own exact rescored top ``k``, so the global top ``k`` is among the
``shards × k`` hits and the merge is a plain one, in the order a single collection ranks: best
score first (highest for cosine and dot, lowest squared distance for l2), ties by lower id, empty
slots (id ``NO_ID``, score NaN) last.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

import bitseek

ROUTING = "splitmix64"


def splitmix64(ids: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of each id (uint64 arithmetic wraps, as in the C original)."""
    z = ids.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """The shard of each id."""
    return (splitmix64(ids) % np.uint64(shards)).astype(np.int64)


def as_ids(ids: Any) -> np.ndarray:
    """``ids`` as a uint64 array, refusing what the library refuses (negative, non-integer)."""
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"ids: expected a 1-D sequence of integers, got shape {a.shape}")
    if a.size == 0:
        return a.astype(np.uint64)
    if a.dtype.kind == "i":
        if (a < 0).any():
            raise ValueError("ids: negative id; ids are integers from 0 to 2**64-2")
    elif a.dtype.kind != "u":
        raise ValueError(f"ids: expected integers, got {a.dtype}; ids are integers from 0 to 2**64-2")
    return a.astype(np.uint64)


def merge(
    parts: Sequence[Tuple[np.ndarray, np.ndarray]],
    k: int,
    lower_is_better: bool,
    payloads: Optional[Sequence[List[List[Any]]]] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[List[List[Any]]]]:
    """The best ``k`` of each row over the shards' ``(ids, scores)``, as one collection ranks."""
    ids = np.concatenate([p[0] for p in parts], axis=1)
    scores = np.concatenate([p[1] for p in parts], axis=1)
    key = scores.astype(np.float64) if lower_is_better else -scores.astype(np.float64)
    key[np.isnan(key)] = np.inf
    order = np.lexsort((ids, key), axis=-1)[:, :k]
    out_ids = np.take_along_axis(ids, order, axis=1)
    out_scores = np.take_along_axis(scores, order, axis=1)
    out_payloads = None
    if payloads is not None:
        flat = [sum((p[r] for p in payloads), []) for r in range(ids.shape[0])]
        out_payloads = [[flat[r][j] for j in order[r]] for r in range(ids.shape[0])]
    empty = out_ids == np.uint64(bitseek.NO_ID)
    out_scores[empty] = np.nan
    return out_ids, out_scores, out_payloads

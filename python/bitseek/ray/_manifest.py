"""The sharded index's manifest, ``uri/bitseek-sharded.json``: the shards, their routing and the
collection settings. A build writes it last, in one atomic step, so it only ever names shards
that were completely published; an index opens nothing that it does not name."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from ._routing import ROUTING
from ._store import Store

MANIFEST = "bitseek-sharded.json"
FORMAT = "bitseek-sharded"
VERSION = 1


def write(store: Store, build: str, shards: List[str], settings: Dict[str, Any],
          points: int) -> Dict[str, Any]:
    m = {
        "format": FORMAT,
        "version": VERSION,
        "build": build,
        "routing": ROUTING,
        "shards": shards,
        "points": points,
        **settings,
    }
    store.put(MANIFEST, json.dumps(m, indent=1).encode())
    return m


def read(store: Store) -> Dict[str, Any]:
    """The manifest; FileNotFoundError when ``uri`` holds no finished build."""
    if not store.exists(MANIFEST):
        raise FileNotFoundError(
            f"{store.uri} holds no sharded bitseek index ({MANIFEST} is missing): build one with "
            f"bitseek.ray.build(source, {store.uri!r}), or check the uri"
        )
    raw = store.get(MANIFEST)
    try:
        m = json.loads(raw)
    except ValueError as e:
        raise _corrupt(store, f"is not JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise _corrupt(store, f"is not a {FORMAT} manifest")
    if m.get("version") != VERSION:
        raise _corrupt(store, f"has version {m.get('version')}; this bitseek reads {VERSION}")
    if m.get("routing") != ROUTING or not isinstance(m.get("shards"), list) or not m["shards"]:
        raise _corrupt(store, "names no shards or an unknown routing")
    return m


def _corrupt(store: Store, what: str) -> Exception:
    import bitseek

    return bitseek.CorruptIndex(
        f"{store.uri}/{MANIFEST} {what}: rebuild the index with bitseek.ray.build"
    )

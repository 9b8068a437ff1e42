"""``bitseek.ray.serve``: a Ray Serve ingress with ``bitseek serve``'s search paths and JSON.

Served: ``GET /health``, ``GET /collections``, ``POST /collections/{name}/search`` (``{"vector",
"k", "oversample", "filter"}`` → ``{"hits": [{"id", "score", "payload"}]}``) and
``POST /collections/{name}/search/batch`` (``{"vectors", ...}`` → ``{"results": [{"hits"}]}``),
where ``name`` is the last part of ``uri``. Errors are ``{"error": {"status", "code",
"message"}}`` as ``bitseek serve`` answers them. Not served: writes, text queries (no embedding
model in the ingress) and the other admin paths.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Dict, Optional, Tuple

import bitseek


def collection_name(uri: str) -> str:
    """The collection name the ingress answers to: the last part of ``uri``."""
    path = uri.split("?", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or "default"


def _error(status: int, code: str, message: str) -> Tuple[int, Dict[str, Any]]:
    return status, {"error": {"status": status, "code": code, "message": message}}


def _hits(ids: Any, scores: Any, payloads: Any, row: int) -> Dict[str, Any]:
    hits = []
    for j in range(ids.shape[1]):
        if int(ids[row, j]) == bitseek.NO_ID:
            break
        s = float(scores[row, j])
        hits.append({"id": int(ids[row, j]), "score": None if math.isnan(s) else s,
                     "payload": payloads[row][j]})
    return {"hits": hits}


class Api:
    """The request handling, apart from Ray Serve so it can be called directly."""

    def __init__(self, uri: str, **index_options: Any) -> None:
        from ._index import ShardedIndex

        self.index = ShardedIndex(uri, **index_options)
        self.name = collection_name(uri)
        self.started = time.monotonic()

    def handle(self, method: str, path: str, body: bytes) -> Tuple[int, Dict[str, Any]]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["health"]:
            return 200, {"status": "ok", "version": bitseek.__version__, "collections": 1,
                         "text_model_loaded": False,
                         "uptime_seconds": time.monotonic() - self.started}
        if method == "GET" and parts == ["collections"]:
            return 200, {"collections": [{"name": self.name, "points": len(self.index),
                                          "dim": self.index.dim, "metric": self.index.metric}]}
        if len(parts) >= 3 and parts[0] == "collections" and parts[2] == "search":
            if parts[1] != self.name:
                return _error(404, "not_found",
                              f"no collection {parts[1]!r}: this server serves {self.name!r}")
            if method != "POST":
                return _error(405, "method_not_allowed", f"{method} is not allowed on {path}")
            if parts[3:] == []:
                return self._search(body, batch=False)
            if parts[3:] == ["batch"]:
                return self._search(body, batch=True)
        return _error(404, "not_found", f"no route {method} {path}")

    def _search(self, body: bytes, batch: bool) -> Tuple[int, Dict[str, Any]]:
        try:
            req = json.loads(body or b"{}")
        except ValueError as e:
            return _error(400, "bad_request", f"the body is not JSON: {e}")
        if not isinstance(req, dict):
            return _error(400, "bad_request", "the body must be a JSON object")
        key = "vectors" if batch else "vector"
        if req.get("texts" if batch else "text") is not None:
            return _error(400, "bad_request",
                          "text queries are not served by the Ray ingress: send "
                          f"\"{key}\" (embed the text first)")
        if req.get(key) is None:
            return _error(400, "bad_request", f"send \"{key}\" (an array of numbers)")
        queries = req[key] if batch else [req[key]]
        if batch and not queries:
            return _error(400, "bad_request", "the batch is empty: send at least one query")
        k = req.get("k", 10)
        oversample: Optional[float] = req.get("oversample")
        try:
            import numpy as np

            q = np.asarray(queries, dtype=np.float32)
            ids, scores, payloads, _ = self.index._search(
                q, k, oversample, req.get("filter"), False, 60.0, payloads=True
            )
        except (ValueError, TypeError) as e:
            return _error(400, "bad_request", str(e))
        except TimeoutError as e:
            return _error(503, "unavailable", str(e))
        results = [_hits(ids, scores, payloads, r) for r in range(ids.shape[0])]
        return 200, ({"results": results} if batch else results[0])


def serve(uri: str, route_prefix: str = "/", name: str = "bitseek", num_replicas: int = 1,
          **index_options: Any) -> Any:
    """Starts (or updates) the Ray Serve application ``name`` serving the index under ``uri`` at
    ``route_prefix``; returns its handle. Every ingress replica shares the shard actors."""
    from ray import serve as ray_serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @ray_serve.deployment(num_replicas=num_replicas)
    class BitseekIngress:
        def __init__(self, uri: str, options: Dict[str, Any]) -> None:
            self.api = Api(uri, **options)
            self.prefix = route_prefix.rstrip("/")

        async def __call__(self, request: Request) -> JSONResponse:
            import asyncio

            path = request.url.path
            if self.prefix and path.startswith(self.prefix):
                path = path[len(self.prefix):]
            body = await request.body()
            status, out = await asyncio.get_running_loop().run_in_executor(
                None, self.api.handle, request.method, path, body
            )
            return JSONResponse(out, status_code=status)

    return ray_serve.run(BitseekIngress.bind(uri, index_options), name=name,
                         route_prefix=route_prefix)

"""Shared fixtures: random vectors, exact (numpy) search, and the `bitseek` binary."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def exact(vectors, queries, k, metric="cosine"):
    """Brute-force top-k ids and scores, best first (ties by id), as float64 numpy."""
    v = vectors.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "l2":
        s = ((q[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        order = np.argsort(s, axis=1, kind="stable")[:, :k]
    else:
        s = q @ v.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


@pytest.fixture(scope="session")
def data():
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((2000, 48)).astype(np.float32)
    queries = rng.standard_normal((25, 48)).astype(np.float32)
    return vectors, queries


@pytest.fixture(scope="session")
def cli():
    """Runs the `bitseek` binary ($BITSEEK_BIN, else target/release/bitseek, built if missing)."""
    path = pathlib.Path(os.environ.get("BITSEEK_BIN", REPO / "target" / "release" / "bitseek"))
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "bitseek"], cwd=REPO, check=True
        )

    def run(*args, ok=True):
        p = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True)
        if ok:
            assert p.returncode == 0, p.stderr
        return p

    return run


# A small repository for the code search tests (test_codesearch.py, test_mcp.py).
CODE_FILES = {
    "store/checksum.py": '''
def verify_checksum(data: bytes, expected: int) -> bool:
    """Compare the xxh3 hash of the data with the stored checksum."""
    return hash(data) == expected
''',
    "net/http.py": '''
def fetch_page(url: str) -> str:
    """Download a web page over HTTP and return its body."""
    import urllib.request
    return urllib.request.urlopen(url).read().decode()
''',
    "src/sort.rs": '''
/// Sorts the values in place with insertion sort.
pub fn insertion_sort(v: &mut [i32]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] { v.swap(j - 1, j); j -= 1; }
    }
}
''',
}


@pytest.fixture()
def repo(tmp_path):
    for name, text in CODE_FILES.items():
        p = tmp_path / "repo" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path / "repo"

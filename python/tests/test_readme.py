"""The README's Python example runs, and its types check under `mypy --strict` with our stubs."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def example():
    text = README.read_text()
    section = text[text.index("## Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tmp_path):
    p = subprocess.run([sys.executable, "-c", example()], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "10000 384 cosine rabitq" in p.stdout


def test_readme_example_types(tmp_path):
    if os.environ.get("BITSEEK_REQUIRE_MYPY") != "1":
        pytest.importorskip("mypy")
    (tmp_path / "example.py").write_text(example())
    p = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "example.py"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr

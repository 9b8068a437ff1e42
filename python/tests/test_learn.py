"""bitseek.train and Encoder: learned codes, interchangeable with `bitseek train` / `build`."""

import json

import numpy as np
import pytest

import bitseek


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(3)
    docs = rng.standard_normal((1200, 32)).astype(np.float32)
    queries = (docs + 0.3 * rng.standard_normal(docs.shape)).astype(np.float32)
    return queries, docs


@pytest.fixture(scope="module")
def encoder(pairs):
    return bitseek.train(pairs=pairs, bits=2, dims=32, hidden=32, epochs=2, batch=256, seed=1)


def test_train_and_build(encoder, pairs, tmp_path, cli):
    queries, docs = pairs
    assert (encoder.dim, encoder.bits, encoder.dims) == (32, 2, 32)
    t = encoder.training
    assert t["training_pairs"] == 1080 and t["validation_pairs"] == 120
    assert t["best_val_mrr"] >= t["start_val_mrr"] > 0
    index = bitseek.Index.build(docs, quantizer=encoder)
    assert index.quantizer.startswith("learned")
    ids, _ = index.search(queries[:200], k=10)
    hit = np.mean([i in row for i, row in enumerate(ids)])
    assert hit > 0.9, hit

    path = tmp_path / "enc.bitseek"
    assert encoder.save(path) == path.stat().st_size
    again = bitseek.Encoder.open(path)
    assert again.training == encoder.training
    by_file = bitseek.Index.build(docs, quantizer=f"learned:{path}")
    np.testing.assert_array_equal(by_file.search(queries[:50], k=10)[0], ids[:50])

    np.save(tmp_path / "docs.npy", docs)
    np.save(tmp_path / "q.npy", queries[:50])
    cli("build", "--input", tmp_path / "docs.npy", "--quantizer", f"learned:{path}",
        "--out", tmp_path / "cli.bitseek")
    out = cli("query", tmp_path / "cli.bitseek", "--queries", tmp_path / "q.npy", "-k", 10, "--json").stdout
    cli_ids = np.array([[h["id"] for h in json.loads(line)["hits"]] for line in out.splitlines()])
    np.testing.assert_array_equal(cli_ids, ids[:50])


def test_learned_refusals(encoder, pairs, tmp_path):
    queries, docs = pairs
    with pytest.raises(ValueError, match="learned codes rank by cosine"):
        bitseek.Index.build(docs, quantizer=encoder, metric="dot")
    with pytest.raises(ValueError, match="trained for dimension 32"):
        bitseek.Index.build(docs[:, :16], quantizer=encoder)
    with pytest.raises(ValueError, match="learned: needs the encoder file"):
        bitseek.Index.build(docs, quantizer="learned:")
    with pytest.raises(FileNotFoundError):
        bitseek.Index.build(docs, quantizer=f"learned:{tmp_path / 'none.bitseek'}")
    with pytest.raises(ValueError, match="row i of each must belong together"):
        bitseek.train(pairs=(queries[:10], docs[:11]))
    with pytest.raises(ValueError, match="unknown"):
        bitseek.train(pairs=pairs, estimator="magic")

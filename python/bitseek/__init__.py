"""bitseek: binary and multi-bit vector codes, searched from numpy.

The same engine, files and errors as the ``bitseek`` command line: an index built here answers
``bitseek query`` identically, and one built by ``bitseek build`` opens here.

>>> import numpy as np, bitseek
>>> vectors = np.random.default_rng(0).standard_normal((1000, 64), dtype=np.float32)
>>> index = bitseek.Index.build(vectors, quantizer="rabitq", metric="cosine")
>>> ids, scores = index.search(vectors[:3], k=5)
>>> ids.shape, ids.dtype.name, scores.dtype.name
((3, 5), 'uint64', 'float32')

Collections (``Db``, ``Collection``) are the directories ``bitseek serve`` serves: upserts and
deletes with JSON payloads, durable on return, searched with payload filters.

``CodeIndex(path)`` is ``bitseek index`` / ``bitseek search`` over one repository, with the
embedding model run in process (``bitseek model fetch`` installs it).

``train(pairs=(queries, docs))`` learns codes as ``bitseek train`` does and returns an
``Encoder``, usable as ``Index.build(vectors, quantizer=encoder)`` and savable.

Results are ``(n_queries, k)`` arrays, best first. When fewer than ``k`` hits exist, the
remaining slots hold id ``NO_ID`` (``2**64 - 1``) and score NaN.

Errors: ``ValueError`` for bad shapes, dtypes, NaN/inf, zero vectors under cosine, wrong
dimensions and bad parameters; ``FileNotFoundError`` / ``OSError`` when a file cannot be read or
written; ``CorruptIndex`` (a subclass of ``OSError``) when a file fails its checks. Messages are
the ones the CLI prints. The GIL is released while bitseek works, so Python threads searching one
index run in parallel.
"""

from ._bitseek import (
    NO_ID,
    CodeIndex,
    Collection,
    CorruptIndex,
    Db,
    Encoder,
    Index,
    __version__,
    train,
)

__all__ = [
    "NO_ID",
    "CodeIndex",
    "Collection",
    "CorruptIndex",
    "Db",
    "Encoder",
    "Index",
    "__version__",
    "train",
]

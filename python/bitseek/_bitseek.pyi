"""Type stubs of the extension module; see the docstrings in bitseek/__init__.py."""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
#: The id of an empty result slot (2**64 - 1); its score is NaN.
NO_ID: int

_Path = Union[str, "os.PathLike[str]"]
_Vectors = Union[npt.NDArray[np.float32], npt.NDArray[np.float16]]
_Ids = Union[npt.NDArray[np.uint64], npt.NDArray[Any], Sequence[int]]

class CorruptIndex(OSError):
    """A file failed its checks (magic, checksum, length, version): rebuild or restore it."""

class Index:
    """A flat index of binary or multi-bit codes, in memory or mapped from its file."""

    @staticmethod
    def build(
        vectors: _Vectors,
        quantizer: Union[str, "Encoder"] = "rabitq",
        metric: str = "cosine",
        keep: str = "f32",
        ids: Optional[_Ids] = None,
        seed: int = 0x5EED,
        scale_search: str = "optimal",
        progress: bool = False,
        index: str = "flat",
        lists: Optional[int] = None,
        degree: Optional[int] = None,
    ) -> "Index": ...
    @staticmethod
    def open(path: _Path) -> "Index": ...
    def save(self, path: _Path) -> int: ...
    def search(
        self,
        queries: _Vectors,
        k: int = 10,
        oversample: int = 4,
        rescore: bool = True,
        threads: Optional[int] = None,
        query_bits: Optional[int] = None,
        symmetric: bool = False,
        effort: Optional[int] = None,
    ) -> Tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]: ...
    def __len__(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def quantizer(self) -> str: ...
    @property
    def keep(self) -> str: ...
    @property
    def bytes_per_vector(self) -> int: ...
    def ids(self) -> npt.NDArray[np.uint64]: ...

class Db:
    """A directory of collections, in the format `bitseek serve` serves."""

    def __init__(self, path: _Path) -> None: ...
    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        quantizer: str = "rabitq",
        keep: str = "f32",
        index: str = "flat",
        index_min_rows: int = 10000,
        index_degree: Optional[int] = None,
    ) -> "Collection": ...
    def __getitem__(self, name: str) -> "Collection": ...
    def __contains__(self, name: str) -> bool: ...
    def collections(self) -> List[str]: ...
    def drop_collection(self, name: str) -> None: ...

class Collection:
    """A collection: upserts and deletes through a write-ahead log, searched with filters."""

    @property
    def name(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> str: ...
    def __len__(self) -> int: ...
    def info(self) -> Dict[str, Any]: ...
    def upsert(
        self, ids: _Ids, vectors: _Vectors, payloads: Optional[Sequence[Any]] = None
    ) -> int: ...
    def delete(self, ids: _Ids) -> int: ...
    def get(self, id: int) -> Optional[Dict[str, Any]]: ...
    def search(
        self,
        queries: _Vectors,
        k: int = 10,
        oversample: Optional[float] = None,
        filter: Optional[Dict[str, Any]] = None,
        effort: Optional[int] = None,
    ) -> Tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32], List[List[Any]]]: ...
    def compact(self) -> Dict[str, Any]: ...
    def flush(self) -> None: ...
    def checkpoint(self) -> None: ...
    def wait_for_builds(self) -> Optional[str]: ...

class CodeIndex:
    """Semantic code search over one repository; its index is `path/.bitseek`."""

    def __init__(
        self,
        path: _Path,
        model_dir: Optional[_Path] = None,
        encoder: str = "default",
        adapter: str = "default",
    ) -> None: ...
    def update(
        self, batch: int = 256, progress: bool = False, int8: Optional[bool] = None
    ) -> Dict[str, Any]: ...
    def search(
        self,
        question: str,
        k: int = 10,
        lang: Optional[str] = None,
        path: Optional[str] = None,
        semantic_only: bool = False,
        tests: bool = False,
    ) -> List[Dict[str, Any]]: ...
    @property
    def path(self) -> str: ...

class Encoder:
    """A trained encoder of learned codes (from `train` or `Encoder.open`)."""

    @staticmethod
    def open(path: _Path) -> "Encoder": ...
    def save(self, path: _Path) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def bits(self) -> int: ...
    @property
    def dims(self) -> int: ...
    @property
    def training(self) -> Dict[str, Any]: ...

def train(
    pairs: Tuple[_Vectors, _Vectors],
    val: Optional[Tuple[_Vectors, _Vectors]] = None,
    bits: int = 2,
    dims: int = 384,
    hidden: int = 128,
    estimator: str = "ste",
    norm: str = "none",
    augment: str = "none",
    epochs: int = 20,
    patience: int = 3,
    batch: int = 512,
    lr: float = 3e-4,
    near_duplicate: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> Encoder: ...

"""Where a sharded index lives: a directory every node can read, or an object store.

The seam is five operations on whole files named by a path relative to ``uri``: ``put`` (atomic:
a reader sees the old file or the new one, never a part), ``get``, ``fetch`` (to a local file),
``list`` and ``delete``. A local or shared-filesystem ``uri`` is served by the operating system
(``put`` writes a temporary file, syncs it and renames it, then syncs the directory); anything
else (``s3://bucket/prefix?endpoint_override=...``, ``gs://...``) by pyarrow's filesystems,
where one PUT of a whole object is atomic. Nothing is ever modified in place: segments are written
once under a new name, the write log is one object per acknowledged write, and the manifests are
replaced whole, so an object store's read-after-write consistency is all that is needed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, List


class Store:
    """The files under ``uri``; see the module docs."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.local = "://" not in uri or uri.startswith("file://")
        if self.local:
            self.root = os.path.abspath(uri[len("file://") :] if uri.startswith("file://") else uri)
            self._fs: Any = None
        else:
            import pyarrow.fs as pafs

            self._fs, root = pafs.FileSystem.from_uri(uri)
            self.root = root.rstrip("/")

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if self.local else f"{self.root}/{rel}"

    def exists(self, rel: str) -> bool:
        if self.local:
            return os.path.exists(self._path(rel))
        import pyarrow.fs as pafs

        return self._fs.get_file_info(self._path(rel)).type != pafs.FileType.NotFound

    def get(self, rel: str) -> bytes:
        """The whole file; FileNotFoundError naming ``uri`` and the file when it is missing."""
        path = self._path(rel)
        if self.local:
            with open(path, "rb") as f:
                return f.read()
        if not self.exists(rel):
            raise FileNotFoundError(f"{self.uri}: {rel} does not exist")
        with self._fs.open_input_stream(path) as f:
            return f.read()

    def put(self, rel: str, data: bytes) -> None:
        """Writes ``rel`` whole and atomically, durable on return."""
        path = self._path(rel)
        if not self.local:
            with self._fs.open_output_stream(path) as f:
                f.write(data)
            return
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _sync_dir(parent)

    def put_file(self, rel: str, local: str) -> None:
        """Uploads the local file ``local`` as ``rel`` (atomically, durable on return)."""
        if not self.local:
            import pyarrow.fs as pafs

            pafs.copy_files(local, self._path(rel), destination_filesystem=self._fs)
            return
        dest = self._path(rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = dest + ".tmp"
        shutil.copyfile(local, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        _sync_dir(os.path.dirname(dest))

    def fetch(self, rel: str, local: str, link: bool = False) -> None:
        """Copies ``rel`` to the local file ``local``; ``link``: hard-link instead when both are
        on one filesystem (only for files that are never modified, like segments)."""
        src = self._path(rel)
        if self.local:
            if not os.path.exists(src):
                raise FileNotFoundError(f"{self.uri}: {rel} does not exist")
            if link:
                try:
                    os.link(src, local)
                    return
                except OSError:
                    pass
            shutil.copyfile(src, local)
            return
        import pyarrow.fs as pafs

        if not self.exists(rel):
            raise FileNotFoundError(f"{self.uri}: {rel} does not exist")
        pafs.copy_files(src, local, source_filesystem=self._fs)

    def list(self, rel_dir: str) -> List[str]:
        """The names of the files directly in ``rel_dir`` (empty when it does not exist)."""
        path = self._path(rel_dir)
        if self.local:
            try:
                return sorted(n for n in os.listdir(path) if not n.startswith(".tmp-"))
            except FileNotFoundError:
                return []
        import pyarrow.fs as pafs

        infos = self._fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(
            i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name
        )

    def delete(self, rel: str) -> None:
        """Deletes a file, or a directory and everything in it; nothing if it does not exist."""
        path = self._path(rel)
        if self.local:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
            return
        import pyarrow.fs as pafs

        kind = self._fs.get_file_info(path).type
        if kind == pafs.FileType.Directory:
            self._fs.delete_dir(path)
        elif kind == pafs.FileType.File:
            self._fs.delete_file(path)

    def size(self) -> int:
        """Bytes under ``uri``."""
        if self.local:
            return sum(
                os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(self.root) for n in ns
            )
        import pyarrow.fs as pafs

        infos = self._fs.get_file_info(
            pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        )
        return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File)


def _sync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

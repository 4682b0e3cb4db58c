"""Where run folders live: a local folder, a mount every node shares, or an object store.

`--storage-path` is a local path or a URI that pyarrow understands (`s3://bucket/prefix`,
`gs://...`, `file:///...`; a query string passes options, e.g.
`s3://bucket/runs?endpoint_override=host:9000&scheme=http`). Ray Tune writes its
experiment files there itself; this module writes ours through the same filesystem.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from search.errors import UserError


@dataclass(frozen=True)
class RunLocation:
    """One run folder: `<storage>/<name>` on some pyarrow filesystem."""

    fs: pafs.FileSystem
    storage: str  # what Ray Tune gets as storage_path: an absolute path or the URI
    path: str  # the run folder's path inside `fs`
    name: str

    @classmethod
    def open(cls, storage_path: str | Path, name: str) -> RunLocation:
        storage = str(storage_path)
        if "://" in storage:
            try:
                fs, base = pafs.FileSystem.from_uri(storage)
            except (ValueError, OSError) as exc:
                raise UserError(f"--storage-path {storage}: {exc}") from None
        else:
            fs = pafs.LocalFileSystem()
            storage = base = str(Path(storage).expanduser().resolve())
        location = cls(fs=fs, storage=storage, path=posixpath.join(base, name), name=name)
        location._check_storage_is_a_folder(base)
        return location

    @property
    def is_local(self) -> bool:
        """A plain path on this machine (which may still be a shared mount)."""
        return isinstance(self.fs, pafs.LocalFileSystem) and "://" not in self.storage

    @property
    def uri(self) -> str:
        """The run folder as Ray Tune names it: a path, or the URI with its options kept."""
        if self.is_local:
            return self.path
        base, sep, query = self.storage.partition("?")
        return f"{base.rstrip('/')}/{self.name}{sep}{query}"

    @property
    def display(self) -> str:
        """How to name the run folder to a user."""
        return self.uri.partition("?")[0]

    def _check_storage_is_a_folder(self, base: str) -> None:
        info = self._info(base)
        if info.type == pafs.FileType.File:
            raise UserError(f"--storage-path {self.storage} is a file, not a folder")

    def _info(self, path: str) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(path)
        except OSError as exc:
            raise UserError(f"cannot reach --storage-path {self.storage}: {exc}") from None

    def exists(self, name: str | None = None) -> bool:
        path = self.path if name is None else posixpath.join(self.path, name)
        return self._info(path).type != pafs.FileType.NotFound

    def create(self) -> None:
        try:
            self.fs.create_dir(self.path, recursive=True)
        except OSError as exc:  # e.g. a bucket that does not exist, no write permission
            raise UserError(f"cannot create {self.display}: {exc}") from None

    def entries(self) -> list[str]:
        """The names directly in the run folder, sorted."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(selector))

    def clear(self, keep: str) -> None:
        """Delete everything in the run folder except the file `keep`."""
        for name in self.entries():
            if name == keep:
                continue
            path = posixpath.join(self.path, name)
            if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                self.fs.delete_dir(path)
            else:
                self.fs.delete_file(path)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a file of the run folder; on local disks atomically (temp file + rename)."""
        target = posixpath.join(self.path, name)
        folder, base = posixpath.split(target)
        if folder != self.path:  # e.g. best/model.pt
            self.fs.create_dir(folder, recursive=True)
        tmp = posixpath.join(folder, f".{base}.tmp") if self.is_local else target
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        if tmp != target:
            self.fs.move(tmp, target)

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(posixpath.join(self.path, name)) as src:
            return src.read()

    def relative(self, path: str) -> str:
        """`path` relative to the run folder when it lies inside it, else unchanged."""
        prefix = self.path.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path

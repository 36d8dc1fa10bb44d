"""Atomic writes and output paths confined to their output folder.

Every writer of datasets, scenes, predictions and checkpoints goes through here, so a crash, a
full disk or Ctrl-C part-way never leaves a truncated file or a half-updated dataset: a file is
written to a temporary name in the same folder, fsync'ed and renamed over the old one (rename is
atomic within a filesystem); a folder is built under a temporary name and swapped in whole
(`atomic_directory`), or its files are staged and moved in with the index files last
(`StagedFiles`). Until the final rename the previous output is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ssr_core.errors import InputError


class UnsafePathError(InputError):
    """A name from an input file (a scene id, a frame path) that would lead outside its output folder."""


class OutputPathError(InputError):
    """An output path that cannot be written, or that would overwrite one of the command's inputs."""


# ---------------------------------------------------------------------------- confinement


def safe_name(name: object, what: str) -> str:
    """`name` if it is one plain path component (no separator, not '.', '..', empty or absolute)."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\x00" in name:
        raise UnsafePathError(f"{what} {name!r} is not a usable folder or file name")
    if "/" in name or "\\" in name or os.path.isabs(name):
        raise UnsafePathError(f"{what} {name!r} must be a plain name without path separators")
    return name


def confined_path(root: str | Path, relative: str | Path, what: str = "path") -> Path:
    """`root / relative`, refused unless it stays inside `root` once '..' and symlinks are resolved."""
    rel = Path(relative)
    if rel.is_absolute() or "\x00" in str(rel):
        raise UnsafePathError(f"{what} {str(relative)!r} must be relative to {root}")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{what} {str(relative)!r} leads outside {root}")
    return Path(root) / rel


def check_output_file(path: str | Path, inputs: tuple[str | Path, ...] = (), what: str = "--out") -> Path:
    """`path` if a file can be written there without touching `inputs`; checked before a long run
    so a typo never costs the run's result. The folder is not created here."""
    out = Path(path)
    if out.is_dir():
        raise OutputPathError(f"{what} {out} is a folder; give a file name")
    for source in inputs:
        if Path(source).resolve() == out.resolve():
            raise OutputPathError(f"{what} {out} is also an input ({source}); it would be overwritten")
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {out}: {parent} is not a writable folder")
    return out


# ---------------------------------------------------------------------------- files


def _fsync_dir(folder: Path) -> None:
    """Persist a rename: the directory entry must reach the disk too (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit fsync it and rename it onto `path`.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path` keeps
    its previous content.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    """JSON of `obj`; NaN/inf are refused (they are not JSON and no reader here accepts them)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + ("\n" if indent is not None else ""))


# ---------------------------------------------------------------------------- folders


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name beside `path`; on a clean exit swap it in for `path`.

    The previous folder is moved aside, the new one renamed in, and the old one deleted; if the
    rename fails the old folder is put back. On an exception the new folder is deleted and `path`
    is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_directory(staging, target)


def replace_directory(new: Path, target: Path) -> None:
    """Rename folder `new` onto `target` (same filesystem), replacing what was there."""
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        old.rmdir()
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    _fsync_dir(target.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


class StagedFiles:
    """Files and folders written into a staging folder, then moved into `root` together.

    For outputs that share a folder with other things (a dataset built into its scenes folder):
    `path(rel)` gives where to write `root/rel` while staging; `commit()` renames every staged
    top-level entry over its counterpart, the entries named in `last` (the index files that point
    at the others, e.g. train.jsonl) at the very end. Until `commit` starts, `root` is unchanged;
    a failure (or Ctrl-C, or a killed process) before it leaves the previous output intact. Staged
    files are not fsync'ed one by one (that cost a build 15 %): against a power cut right after a
    build, durability is the filesystem's.
    """

    def __init__(self, root: str | Path, last: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.last = last
        self.staging = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=self.root))
        self._entries: list[str] = []  # top-level names, in the order they were first staged

    def path(self, relative: str | Path, what: str = "path") -> Path:
        """Staging location of the file `root/relative` (confined to the root); parent folders are created."""
        staged = self._stage(relative, what)
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def folder(self, relative: str | Path, what: str = "path") -> Path:
        """Staging location of the folder `root/relative`, created: committed (replacing its
        counterpart whole) even if nothing is written into it."""
        staged = self._stage(relative, what)
        staged.mkdir(parents=True, exist_ok=True)
        return staged

    def _stage(self, relative: str | Path, what: str) -> Path:
        # The folders above must stay inside the root; the entry itself is replaced, never followed
        # (an old symlink there may point anywhere).
        confined_path(self.root, Path(relative).parent, what)
        safe_name(Path(relative).name, what)
        top = Path(relative).parts[0]
        if top not in self._entries:
            self._entries.append(top)
        return self.staging / relative

    def commit(self) -> None:
        order = [e for e in self._entries if e not in self.last] + [e for e in self.last if e in self._entries]
        for name in order:
            src, dst = self.staging / name, self.root / name
            if src.is_dir() and not src.is_symlink():
                self._merge_dir(src, dst)
            else:
                os.replace(src, dst)
        _fsync_dir(self.root)
        self.discard()

    def _merge_dir(self, src: Path, dst: Path) -> None:
        """Move each staged child of `src` into `dst`; staged folders replace their counterparts whole."""
        if not dst.is_dir() or dst.is_symlink():
            replace_directory(src, dst)
            return
        for child in sorted(src.iterdir()):
            if child.is_dir() and not child.is_symlink():
                replace_directory(child, dst / child.name)
            else:
                os.replace(child, dst / child.name)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

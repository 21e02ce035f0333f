"""Output directories that graphevent owns: a marker of what it wrote, and a lock while it writes.

Every command that writes a directory (``preprocess``: a dataset, ``train``: a run, ``eval``:
its tables and figures) goes through :class:`OutputDir`::

    OUT/
      .graphevent.json   marker: kind (dataset | run | eval), random id, graphevent version,
                         status (writing | complete), "entries" (the top-level files and
                         folders it created, recorded *before* each is created, so a crash
                         leaves them listed) and "files" (every file, at the last completion)
      .graphevent.lock   flock'd while a command writes OUT; holds the writer's pid

Rules (``--overwrite`` deletes only what graphevent wrote and can show it wrote):

- ``--out`` must not be a file or a symbolic link, and must be writable;
- a non-empty directory without a marker is never written to or deleted from (an output of
  an earlier graphevent version has no marker: the user checks and deletes it);
- the marker's kind must be the command's (``eval --overwrite`` on a run is refused);
- ``--overwrite`` removes the listed entries only, and refuses, naming the first one, when
  anything else is there: an unlisted entry, a symbolic link, or (marker status complete) a
  file inside a listed folder that is not in ``files``. Temporary files of atomic writes
  (``.NAME.tmp*``, ``NAME.tmp*`` of a listed ``NAME``) count as listed; a folder holding its
  own valid marker (``RUN/eval-test``) is removed by the same rules, under its own lock;
- no input may lie inside the output directory, and nothing removed may be the current
  directory, a parent of it, an input, or a parent of an input;
- the lock is taken with ``fcntl.flock`` (released by the kernel when the process dies); a
  second writer gets ``DIR is in use by process N``. Only the launching process locks:
  DDP workers and DataLoader workers write into a directory their launcher holds.

The module imports neither torch nor anything above :mod:`graphevent.errors`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graphevent import __version__
from graphevent.errors import OutputError

MARKER = ".graphevent.json"
LOCK = ".graphevent.lock"
MARKER_FORMAT = 1

#: What each kind of output is called in messages.
KINDS = {"dataset": "a graphevent dataset", "run": "a graphevent run", "eval": "graphevent eval output"}


def _is_temp_of(name: str, entries: Iterable[str]) -> bool:
    return any(name.startswith((f".{e}.tmp", f"{e}.tmp")) for e in entries)


def _valid_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _valid_rel(path: Any) -> bool:
    return isinstance(path, str) and not path.startswith("/") and all(_valid_name(p) for p in path.split("/"))


def _inside(path: Path, root: Path) -> bool:
    """``path`` is ``root`` or below it (both resolved)."""
    return path == root or root in path.parents


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker of ``directory``; ``None`` without one.

    Raises:
        OutputError: a marker that is not a graphevent marker (unreadable, wrong fields).
    """
    path = Path(directory) / MARKER
    if not path.is_file() or path.is_symlink():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path}: unreadable graphevent marker ({exc}); check the directory and delete it yourself") from None
    ok = (
        isinstance(marker, dict)
        and marker.get("kind") in KINDS
        and isinstance(marker.get("id"), str)
        and marker.get("status") in ("writing", "complete")
        and isinstance(marker.get("entries"), list) and all(_valid_name(e) for e in marker["entries"])
        and isinstance(marker.get("files"), list) and all(_valid_rel(f) for f in marker["files"])
    )
    if not ok:
        raise OutputError(
            f"{path}: not a valid graphevent marker (expected kind, id, status, entries, files); "
            "check the directory and delete it yourself"
        )
    return marker


class OutputDir:
    """A directory one command writes: validated, locked, marked, and cleared only of its own files.

    Args:
        path: the output directory (``--out``).
        kind: ``dataset``, ``run`` or ``eval`` (:data:`KINDS`).
        option: how the user named it, for messages (``--out``).
        inputs: files and directories the command reads; none may lie inside ``path``, and
            nothing that holds one is ever removed.

    Use: :meth:`acquire` (checks, creates, locks), then :meth:`clear` (``--overwrite``) and
    :meth:`start`, :meth:`claim` before creating more top-level entries, :meth:`complete` at
    the end, or :meth:`abandon` on failure; :meth:`release` (or the ``with`` block) unlocks.
    """

    def __init__(self, path: str | Path, kind: str, option: str = "--out", inputs: Iterable[str | Path] = ()) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.path = Path(path)
        self.kind = kind
        self.option = option
        self.inputs = [Path(p) for p in inputs]
        self.marker: dict[str, Any] | None = None
        self.created: Path | None = None  # the topmost directory this process made (the path or a parent)
        self.fresh = False  # this process wrote the marker of a new output
        self._new: list[str] = []  # entries claimed by this process that did not exist
        self._lock_fd: int | None = None
        self._made_lock = False
        self.unmarked = False  # an accepted directory without a marker: locked, never marked
        self._previous_status: str | None = None  # the marker's status before start()

    # ------------------------------------------------------------------ checks and lock
    def _where(self) -> str:
        return f"{self.option} {self.path}"

    def acquire(self, unmarked_ok: bool = False) -> OutputDir:
        """Check the path, create the directory if needed and lock it. Nothing inside is changed.

        Args:
            unmarked_ok: accept a non-empty directory without a marker (``train --resume`` of a
                run written by an earlier graphevent version). It is locked but never marked,
                so ``--overwrite`` keeps refusing it.

        Raises:
            OutputError: a file or symlink at the path, an input inside it, a non-empty
                directory without a marker, a marker of another kind, the directory is in
                use, or it cannot be created or written.
        """
        p = self.path
        self.unmarked = self.check_path(unmarked_ok)
        if not p.is_dir():
            top = p
            while not top.parent.exists() and top.parent != top:
                top = top.parent
            try:
                p.mkdir(parents=True)
            except OSError as exc:
                raise OutputError(f"{self._where()}: cannot create the directory ({exc.strerror or exc})") from None
            self.created = top
        lock = p / LOCK
        if not os.access(p, os.W_OK | os.X_OK):
            self._undo_mkdir()
            raise OutputError(f"{self._where()}: cannot write in the directory (Permission denied)")
        try:
            self._made_lock = not lock.exists()
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._undo_mkdir()
            raise OutputError(f"{self._where()}: cannot write in the directory ({exc.strerror or exc})") from None
        holder = try_lock(fd)
        if holder is not None:
            raise OutputError(f"{p} is in use by process {holder}; wait for it to finish or choose another {self.option}")
        self._lock_fd = fd
        try:
            self.marker = read_marker(p)  # again, under the lock
            if self.marker is not None:
                self._check_kind(self.marker)
        except OutputError:
            self.release()
            raise
        return self

    def check_path(self, unmarked_ok: bool = False) -> bool:
        """The checks of :meth:`acquire` that change nothing (no lock). True: an accepted unmarked directory."""
        p = self.path
        if p.is_symlink():
            raise OutputError(f"{self._where()}: is a symbolic link (to {os.readlink(p)}); give the real directory path")
        if p.exists() and not p.is_dir():
            raise OutputError(f"{self._where()}: exists and is a file; expected a directory (or a path that does not exist)")
        resolved = p.resolve()
        for inp in self.inputs:
            if _inside(inp.resolve(), resolved):
                raise OutputError(f"{self._where()}: input {inp} is inside the output directory; choose another {self.option}")
        return self._check_owner(unmarked_ok) if p.is_dir() else False

    def _undo_mkdir(self) -> None:
        """Remove the directories this process made, if empty (never the current directory)."""
        if self.created is None:
            return
        cwd, top, d = Path.cwd().resolve(), self.created.resolve(), self.path.resolve()
        while not _inside(cwd, d):
            try:
                d.rmdir()
            except OSError:
                break
            if d == top:
                break
            d = d.parent
        self.created = None

    def _check_owner(self, unmarked_ok: bool) -> bool:
        """Refuse a directory of another kind, or a non-empty one without a marker. True: unmarked and accepted."""
        marker = read_marker(self.path)
        if marker is not None:
            self._check_kind(marker)
            return False
        others = sorted(n for n in os.listdir(self.path) if n != LOCK)
        if others and unmarked_ok:
            return True
        if others:
            raise OutputError(
                f"{self._where()}: holds {others[0]}{' and other files' if len(others) > 1 else ''} but no {MARKER} marker "
                f"of graphevent output, so nothing there is replaced or deleted; if it is the output of an earlier "
                f"graphevent version, check it and delete it yourself; otherwise choose another {self.option}"
            )
        return False

    def _check_kind(self, marker: dict[str, Any]) -> None:
        if marker["kind"] != self.kind:
            raise OutputError(
                f"{self._where()}: holds {KINDS[marker['kind']]} ({MARKER} kind {marker['kind']!r}), not {KINDS[self.kind]}; "
                f"refusing to write there; choose another {self.option}"
            )

    def release(self) -> None:
        """Unlock (the lock file stays: it is listed as graphevent's)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> OutputDir:
        return self.acquire() if self._lock_fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------ contents
    def has_content(self) -> bool:
        """Anything in the directory besides the marker and the lock file."""
        return any(n not in (MARKER, LOCK) for n in os.listdir(self.path))

    def foreign(self) -> str | None:
        """The first thing (relative path, sorted order) that the marker does not list, or ``None``."""
        return _first_foreign(self.path, self.marker)

    def check_clear(self, keep: Iterable[str] = ()) -> list[str]:
        """What :meth:`clear` would remove (top-level names); raises instead if it must refuse.

        Raises:
            OutputError: something the marker does not list (named), or an entry that is the
                current directory, an input, or holds one of them.
        """
        first = self.foreign()
        if first is not None:
            raise OutputError(
                f"{self._where()}: {first} was not written by graphevent (not listed in {MARKER}); refusing to overwrite; "
                f"move it away or choose another {self.option}"
            )
        keep = set(keep) | {MARKER, LOCK}
        protected = [Path.cwd().resolve(), *(i.resolve() for i in self.inputs)]
        names = sorted(n for n in os.listdir(self.path) if n not in keep)
        for name in names:
            target = (self.path / name).resolve()
            for q in protected:
                if _inside(q, target):
                    raise OutputError(f"{self._where()}: {name} holds {q}, which is never deleted; refusing to overwrite")
        return names

    def clear(self, keep: Iterable[str] = ()) -> None:
        """``--overwrite``: remove every listed entry (except ``keep``), after :meth:`check_clear`."""
        keep = set(keep)
        for name in self.check_clear(keep):
            _remove(self.path / name, self.inputs)
        if self.marker is not None:
            self.marker["entries"] = [e for e in self.marker["entries"] if e in keep]
            self.marker["files"] = []
            if not self.marker["entries"]:
                self.marker = None  # what follows is a new output, with a new id

    # ------------------------------------------------------------------ marker
    def start(self, entries: Iterable[str] = ()) -> None:
        """Mark the directory as being written (a new output unless it already has our marker)."""
        if self.unmarked:
            return
        if self.marker is None:
            self.marker = {
                "graphevent_output": MARKER_FORMAT, "kind": self.kind, "id": uuid.uuid4().hex,
                "graphevent_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "status": "writing", "entries": [], "files": [],
            }
            self.fresh = True
        self._previous_status = self.marker["status"]
        self.marker["status"] = "writing"
        self.marker["graphevent_version"] = __version__
        self.claim(*entries, force=True)

    def claim(self, *names: str, force: bool = False) -> None:
        """Record top-level ``names`` in the marker before creating them (atomic rewrite)."""
        if self.unmarked:
            return
        if self.marker is None:
            raise RuntimeError("OutputDir.claim before start")
        added = False
        for name in names:
            if not _valid_name(name):
                raise ValueError(f"not a top-level name: {name!r}")
            if name not in self.marker["entries"]:
                self.marker["entries"].append(name)
                added = True
            if not (self.path / name).exists() and name not in self._new:
                self._new.append(name)
        if added or force:
            self._write_marker()

    def complete(self) -> None:
        """Mark the output complete, listing every file now under the listed entries."""
        if self.unmarked:
            return
        if self.marker is None:
            raise RuntimeError("OutputDir.complete before start")
        entries = [e for e in self.marker["entries"] if (self.path / e).exists() or (self.path / e).is_symlink()]
        files = []
        for e in entries:
            p = self.path / e
            if p.is_dir() and not p.is_symlink():
                for root, dirs, fnames in os.walk(p):
                    dirs.sort()
                    for f in sorted(fnames):
                        files.append((Path(root) / f).relative_to(self.path).as_posix())
            else:
                files.append(e)
        self.marker.update(status="complete", entries=sorted(entries), files=sorted(files))
        self._write_marker()

    def abandon(self) -> None:
        """After a failure: remove what this process created (its new entries, the marker of a
        new output, the lock file it made, the directories it made). Then unlock. The marker of
        an earlier output gets its entries and status back."""
        for name in self._new:
            p = self.path / name
            if p.exists() or p.is_symlink():
                _remove(p, self.inputs)
            for tmp in self.path.glob(f".{name}.tmp*"):
                _remove(tmp, self.inputs)
        if self.fresh:
            (self.path / MARKER).unlink(missing_ok=True)
        elif self.marker is not None and self._previous_status is not None:  # an earlier output stays as it was
            self.marker["entries"] = [e for e in self.marker["entries"] if e not in self._new]
            self.marker["status"] = self._previous_status
            self._write_marker()
        self._new = []
        if self._made_lock:
            (self.path / LOCK).unlink(missing_ok=True)
        self.release()
        self._undo_mkdir()  # only when empty: never more than this process made

    def _write_marker(self) -> None:
        path = self.path / MARKER
        tmp = path.with_name(f"{MARKER}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.marker, indent=1) + "\n")
        os.replace(tmp, path)


def try_lock(fd: int, shared: bool = False) -> str | None:
    """``flock`` the lock file ``fd`` without waiting: exclusive (a writer) or ``shared`` (a reader).

    Returns:
        ``None`` once held, the holder's pid written into the file (``N``, or ``N reading``)
        for the next command's message; else who holds it (:func:`_holder`), ``fd`` closed.
    """
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(fd)
        os.close(fd)
        return holder
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}{' reading' if shared else ''}\n".encode(), 0)
    except OSError:  # a read-only lock file (a reader's): the lock holds, its holder is unnamed
        pass
    return None


def _holder(fd: int) -> str:
    """Who holds a lock file, from what it says: ``N`` (a writer) or ``N (reading it)``."""
    words = os.pread(fd, 64, 0).decode(errors="replace").split()
    if not words:
        return "unknown"
    return f"{words[0]} (reading it)" if words[1:2] == ["reading"] else words[0]


class ReadLock:
    """A shared lock on a graphevent dataset or run while a command reads it.

    Commands that read a directory (``train`` its dataset and ``--init-from`` runs, ``eval``,
    ``probe``, ``predict`` and ``export`` their runs and datasets) hold it; a command that
    writes the directory (``preprocess --overwrite``, ``train --resume`` / ``--overwrite``)
    takes the exclusive lock of :class:`OutputDir` and is refused, naming the reader, while
    one holds it; a reader is refused while a writer holds it. A directory without a lock
    file that cannot be written (a read-only copy of a dataset) is read without a lock.

    Args:
        path: the directory read.
        what: how the user named it, for messages (``--data``, ``run``).
    """

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> ReadLock:
        """Take the shared lock (nothing happens for a path that is not a directory).

        Raises:
            OutputError: another command writes the directory.
        """
        lock = self.path / LOCK
        if not self.path.is_dir() or self.path.is_symlink() or lock.is_symlink():
            return self
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            try:
                fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # no lock file and a directory we cannot write: nobody can write it either
                return self
        holder = try_lock(fd, shared=True)
        if holder is not None:
            raise OutputError(f"{self.what} {self.path}: is being written by process {holder}; wait for it to finish")
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ReadLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _first_foreign(directory: Path, marker: dict[str, Any] | None) -> str | None:
    """The first entry (sorted, relative path) of ``directory`` that ``marker`` does not account for."""
    names = sorted(os.listdir(directory))
    if marker is None:
        others = [n for n in names if n != LOCK]
        return others[0] if others else None
    entries = marker["entries"]
    listed_files = set(marker["files"]) if marker["status"] == "complete" else None
    for name in names:
        p = directory / name
        if name in (MARKER, LOCK) or name.startswith(f"{MARKER}.tmp"):
            continue
        if p.is_symlink():
            return name
        if p.is_dir() and (p / MARKER).is_file():  # a nested graphevent output, e.g. RUN/eval-test
            inner = _first_foreign(p, read_marker(p))
            if inner is not None:
                return f"{name}/{inner}"
            continue
        if name in entries:
            if listed_files is not None and p.is_dir():
                for root, dirs, fnames in os.walk(p):
                    dirs.sort()
                    for f in sorted(fnames) + sorted(d for d in dirs if (Path(root) / d).is_symlink()):
                        rel = (Path(root) / f).relative_to(directory).as_posix()
                        if (Path(root) / f).is_symlink() or rel not in listed_files:
                            return rel
            continue
        if _is_temp_of(name, entries):
            continue
        return name
    return None


def _remove(p: Path, inputs: list[Path]) -> None:
    """Delete ``p`` without following symbolic links; a nested output is cleared under its lock."""
    if p.is_symlink() or not p.is_dir():
        p.unlink()
        return
    if (p / MARKER).is_file():
        inner = OutputDir(p, read_marker(p)["kind"], option="nested output", inputs=inputs).acquire()
        try:
            inner.clear()
            (p / MARKER).unlink()
            (p / LOCK).unlink(missing_ok=True)
        finally:
            inner.release()
        p.rmdir()
        return
    shutil.rmtree(p)  # removes symbolic links inside, never what they point to

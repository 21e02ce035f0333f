"""Single output files that graphevent owns: the rule of :mod:`graphevent.utils.outdir` for files.

Every command that writes one file (``predict``: predictions, ``export``: a model,
``probe --out``: a JSON table, ``simulate``: images and particles) goes through
:class:`OutputFile`::

    with OutputFile(out, "predictions", inputs=[run_dir, *raw_files], overwrite=ow) as tmp:
        write(tmp)          # a hidden temporary file next to OUT
    # OUT appears (os.replace) only when the block ends without an exception

Rules (``--overwrite`` replaces only a file graphevent wrote and can show it wrote):

- ``--out`` must not be a directory or a symbolic link; its folder must exist and be
  writable (a missing folder is an error, not created);
- it must not be an input of the command (the same file, or a hard link to one), nor lie
  inside an input directory or inside any graphevent output directory (a dataset, a run,
  an eval: a folder with a ``.graphevent.json`` marker at or above it);
- an existing file is replaced only with ``overwrite`` and only when it carries the
  signature of the same kind of output (:func:`signature`): parquet / ROOT / HDF5 metadata,
  ONNX metadata, a TorchScript extra file, a JSON key;
- the file is locked while it is written (``fcntl.flock`` on ``.NAME.graphevent.lock`` next
  to it, removed afterwards); a second writer gets ``OUT is in use by process N``;
- the content goes to ``.NAME.tmp<pid>`` and is renamed into place at the end; a failure
  (an error, a full disk, SIGINT/SIGTERM) removes the temporary file and leaves an earlier
  ``OUT`` as it was.

The module imports neither torch nor anything above :mod:`graphevent.errors`.
"""

from __future__ import annotations

import errno
import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graphevent.errors import OutputError
from graphevent.utils.outdir import KINDS as DIR_KINDS
from graphevent.utils.outdir import MARKER, read_marker, try_lock

#: The key every signature carries (JSON key, file metadata key, ONNX metadata property).
SIGNATURE_KEY = "graphevent_output"

#: What each kind of file is called in messages.
FILE_KINDS = {
    "predictions": "graphevent predictions",
    "export": "a graphevent export",
    "probe": "graphevent probe results",
    "simulate": "a graphevent simulation",
}

_PARQUET, _ROOT, _HDF5, _ZIP = b"PAR1", b"root", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04"


# ----------------------------------------------------------------------------- signatures
def signature(path: str | Path) -> str | None:
    """The kind of graphevent output ``path`` holds (:data:`FILE_KINDS`), or ``None``.

    Read from the file's own content, never from its name: parquet schema metadata, the
    ``graphevent`` string of a ROOT file, HDF5 file attributes, a TorchScript/npz archive's
    entries, ONNX metadata properties, a JSON object's ``graphevent_output`` key.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    try:
        if head.startswith(_PARQUET):
            return _parquet_kind(path)
        if head.startswith(_ROOT):
            return _root_kind(path)
        if head.startswith(_HDF5):
            return _hdf5_kind(path)
        if head.startswith(_ZIP):
            return _zip_kind(path)
        if head.lstrip()[:1] == b"{":
            return _json_kind(path)
        if path.suffix == ".onnx":
            return _onnx_kind(path)
    except Exception:  # any file that is not what its first bytes say is not ours
        return None
    return None


def _kind_of(meta: Any, default: str | None = None) -> str | None:
    """The kind named by a decoded metadata object (a JSON mapping)."""
    if isinstance(meta, dict):
        kind = meta.get(SIGNATURE_KEY, default)
        return kind if kind in FILE_KINDS else None
    return None


def _parquet_kind(path: Path) -> str | None:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if b"graphevent_simulate" in meta:
        return "simulate"
    if b"graphevent" in meta:  # predictions of any version: the writer's JSON (run, classes, ...)
        return _kind_of(json.loads(meta[b"graphevent"]), "predictions")
    return None


def _root_kind(path: Path) -> str | None:
    import uproot

    with uproot.open(path) as f:
        if "graphevent" not in f:
            return None
        return _kind_of(json.loads(str(f["graphevent"])), "predictions")


def _hdf5_kind(path: Path) -> str | None:
    import h5py

    with h5py.File(path, "r") as f:
        return "simulate" if "graphevent_simulate" in f.attrs else None


def _zip_kind(path: Path) -> str | None:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        for name in names:
            if name.endswith("/extra/graphevent.json"):  # TorchScript written by graphevent export
                return _kind_of(json.loads(z.read(name)), "export")
        if "graphevent_simulate.npy" in names:  # particles .npz of graphevent simulate
            return "simulate"
    return None


def _json_kind(path: Path) -> str | None:
    if path.stat().st_size > 64 * 2**20:
        return None
    return _kind_of(json.loads(path.read_text()))


def _onnx_kind(path: Path) -> str | None:
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return _kind_of(json.loads(props["graphevent"]), "export") if "graphevent" in props else None


# ----------------------------------------------------------------------------- the file
def _owner_dir(path: Path) -> tuple[Path, str] | None:
    """The graphevent output directory (marker) at or above ``path``'s folder, with its kind."""
    for d in [path.parent, *path.parent.parents]:
        if (d / MARKER).is_file():
            try:
                kind = (read_marker(d) or {}).get("kind")
            except OutputError:  # a damaged marker still marks the directory as graphevent's
                kind = None
            return d, DIR_KINDS.get(kind, "a graphevent output")
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class OutputFile:
    """One file a command writes: checked, locked, written under a temporary name, renamed.

    Args:
        path: the output file (``--out``).
        kind: what is written (:data:`FILE_KINDS`); ``--overwrite`` replaces only a file of
            this kind.
        option: how the user named it, for messages (``--out``).
        inputs: files and directories the command reads; ``path`` is none of them and lies
            in none of them.
        overwrite: replace an existing file of the same kind.

    Use: ``with OutputFile(...) as tmp:`` (or :meth:`acquire`, then :meth:`commit` or
    :meth:`abandon`); :meth:`check` alone validates without touching anything.
    """

    def __init__(self, path: str | Path, kind: str, option: str = "--out", inputs: Iterable[str | Path] = (),
                 overwrite: bool = False) -> None:
        if kind not in FILE_KINDS:
            raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(FILE_KINDS)}")
        self.path = Path(path)
        self.kind = kind
        self.option = option
        self.inputs = [Path(p) for p in inputs]
        self.overwrite = overwrite
        self.tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        self.lock = self.path.with_name(f".{self.path.name}.graphevent.lock")
        self._fd: int | None = None

    def _where(self) -> str:
        return f"{self.option} {self.path}"

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Everything that can be checked without writing (see the module's rules).

        Raises:
            OutputError: a directory, symlink, missing or read-only folder, an input or a file
                inside an input or a graphevent output directory, an existing file without
                ``overwrite`` or not of this kind.
        """
        p, where = self.path, self._where()
        if p.is_symlink():
            raise OutputError(f"{where}: is a symbolic link (to {os.readlink(p)}); give the real file path")
        if p.is_dir():
            raise OutputError(f"{where}: is a directory; expected a file name")
        if p.name in ("", ".", ".."):
            raise OutputError(f"{where}: expected a file name")
        folder = p.parent
        if not folder.is_dir():
            what = "is not a directory" if folder.exists() else "does not exist"
            raise OutputError(f"{where}: the folder {folder} {what}; create it first or choose another {self.option}")
        if not os.access(folder, os.W_OK | os.X_OK):
            reason = "read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else "permission denied"
            raise OutputError(f"{where}: cannot write in the folder {folder} ({reason})")
        resolved = p.resolve()
        for inp in self.inputs:
            r = inp.resolve()
            if resolved == r or (p.exists() and _same_file(p, inp)):
                raise OutputError(f"{where}: is an input of this command; choose another {self.option}")
            if r.is_dir() and r in resolved.parents:
                raise OutputError(f"{where}: is inside {inp}, an input of this command; choose another {self.option}")
        owner = _owner_dir(resolved)
        if owner is not None:
            raise OutputError(f"{where}: is inside {owner[0]}, {owner[1]} (it has a {MARKER}); "
                              f"graphevent never adds files there; choose another {self.option}")
        if p.exists():
            if not self.overwrite:
                raise OutputError(f"{where}: already exists; pass --overwrite to replace it")
            found = signature(p)
            if found != self.kind:
                what = f"it holds {FILE_KINDS[found]}, not {FILE_KINDS[self.kind]}" if found else \
                    f"it carries no signature of {FILE_KINDS[self.kind]}"
                raise OutputError(f"{where}: was not written by this command ({what}); refusing to overwrite; "
                                  f"move it away or choose another {self.option}")

    # ------------------------------------------------------------------ lock and write
    def acquire(self) -> Path:
        """:meth:`check`, then take the lock (and check again under it). Returns the temporary path."""
        self.check()
        while True:
            try:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutputError(f"{self._where()}: cannot write in the folder {self.path.parent} "
                                  f"({exc.strerror or exc})") from None
            holder = try_lock(fd)
            if holder is not None:
                raise OutputError(f"{self.path} is in use by process {holder}; wait for it to finish "
                                  f"or choose another {self.option}")
            try:  # the lock file may have been removed by its last holder between open and flock
                same = os.fstat(fd).st_ino == os.stat(self.lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        try:
            self.check()  # again, under the lock: another command may have written it meanwhile
        except OutputError:
            self._unlock()
            raise
        return self.tmp

    def commit(self) -> Path:
        """Move the finished temporary file into place, then unlock."""
        try:
            if not self.tmp.is_file():
                raise RuntimeError(f"{self.tmp}: nothing was written")
            self.check()  # nothing replaced it with a foreign file meanwhile
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abandon()
            raise
        self._unlock()
        return self.path

    def abandon(self) -> None:
        """Remove the temporary file; an earlier ``path`` stays as it was. Then unlock."""
        try:
            self.tmp.unlink(missing_ok=True)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._fd is not None:
            self.lock.unlink(missing_ok=True)  # while still holding it: the next writer re-checks the inode
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Path:
        return self.acquire()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        written = self.tmp.stat().st_size if self.tmp.is_file() else 0
        self.abandon()
        error = write_failure(exc, self.tmp, written, self._where())
        if error is not None:
            raise error from None



def write_json(path: str | Path, document: dict[str, Any], kind: str, inputs: Iterable[str | Path] = (),
               overwrite: bool = False, option: str = "--out") -> Path:
    """Write ``document`` (plus its signature key) as JSON through :class:`OutputFile`."""
    out = OutputFile(path, kind, option, inputs, overwrite)
    with out as tmp:
        tmp.write_text(json.dumps({SIGNATURE_KEY: kind, **document}, indent=1) + "\n")
    return out.path


#: what a failed write says, by errno and by the text libraries put in their messages
_WRITE_FAILURES = {
    errno.ENOSPC: ("No space left on device", "no space left on device"),
    errno.EDQUOT: ("Disk quota exceeded", "disk quota exceeded"),
    errno.EROFS: ("Read-only file system", "read-only file system"),
    errno.EFBIG: ("File too large", "file too large (a file-size limit)"),
}


def write_failure(exc: BaseException, tmp: Path, written: int, out: str) -> OutputError | None:
    """Why writing ``tmp`` failed, when the place was the cause: :func:`os_error_message`, or
    (libraries that report a failed write in their own words, e.g. ``torch.jit.save``'s
    "file write failed") a full file system or a file-size limit the file reached."""
    error = os_error_message(exc, out)
    if error is not None or not isinstance(exc, Exception) or "write" not in str(exc).lower():
        return error
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and written >= limit:
        number = errno.EFBIG
    elif os.statvfs(tmp.parent).f_bavail == 0:
        number = errno.ENOSPC
    else:
        return None
    return os_error_message(OSError(number, os.strerror(number)), out)


def os_error_message(exc: BaseException, out: str | None = None) -> OutputError | None:
    """A full disk, a quota, a read-only file system or a file-size limit as an
    :class:`OutputError` naming ``out`` (else the file of the error); ``None`` for any other error.

    pyarrow and h5py raise ``OSError`` without ``errno``, h5py a ``RuntimeError`` when it
    closes a file it could not extend; both put the system's text in the message, so the
    text is matched too.
    """
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    text = str(exc)
    for number, (marker, reason) in _WRITE_FAILURES.items():
        if getattr(exc, "errno", None) == number or marker in text:
            name = out or getattr(exc, "filename", None) or "an output file"
            return OutputError(f"{name}: cannot write ({reason}); what this command was writing was removed, "
                               "earlier outputs are unchanged")
    return None

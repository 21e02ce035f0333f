"""Snapshots of a directory tree (paths, sha256 of files, symlink targets), to assert that a
command left every file the user had exactly as it was."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def snapshot(root: str | Path) -> dict[str, str]:
    """``{relative path: "file <sha256>" | "dir" | "link -> <target>"}`` of everything under ``root``
    (symbolic links are recorded, never followed); ``{".": "file ..."}`` when ``root`` is a file.
    graphevent's lock files are recorded without their content (each writer puts its pid there)."""
    root = Path(root)
    if root.is_symlink():
        return {".": f"link -> {os.readlink(root)}"}
    if root.is_file():
        return {".": "file " + hashlib.sha256(root.read_bytes()).hexdigest()}
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = f"link -> {os.readlink(p)}"
            elif p.is_dir():
                out[rel] = "dir"
            elif name == ".graphevent.lock":
                out[rel] = "lock"
            else:
                out[rel] = "file " + hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_kept(before: dict[str, str], root: str | Path) -> None:
    """Every path of ``before`` is still under ``root`` with the same bytes (new paths are allowed)."""
    after = snapshot(root)
    lost = sorted(k for k in before if k not in after)
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    assert not lost and not changed, f"lost: {lost}, changed: {changed}"

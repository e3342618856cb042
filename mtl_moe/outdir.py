"""Output folders: mtl-moe deletes only what it wrote itself.

Every command that writes a folder (``export``, ``train``, ``quantize``) claims it first. A claimed
folder holds ``.mtl-moe.json``: which command made it and every file that command wrote there.
``--force`` then removes exactly those files (and the sub-folders they leave empty), never anything
else: a user's notes beside an export, a bitstream Vivado built into it, the hours-long ``hls_prj``
all stay. A non-empty folder without that record is not ours and is refused, ``--force`` or not, as
are the places no output belongs (``/``, the home folder, the current directory, this checkout or
any folder above it).

``staged`` builds a new output in a hidden sibling folder and moves it in only when it is complete:
a crash or SIGKILL half-way leaves the previous output as it was (the half-built sibling is removed
by the next run that claims the same folder).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARKER = ".mtl-moe.json"
REPO = Path(__file__).resolve().parents[1]


class OutputDirError(ValueError):
    """An output folder that mtl-moe must not write into or clear (the CLI prints it as one line)."""


def _protected(out: Path) -> str | None:
    """Why ``out`` can never be an output folder, or None."""
    home = Path.home().resolve()
    cwd = Path.cwd().resolve()
    if out == Path(out.anchor):
        return "it is the filesystem root"
    if out == home:
        return "it is your home folder"
    if out == cwd:
        return "it is the current directory"
    if out == REPO or out in REPO.parents:
        return f"it holds the mtl-moe sources ({REPO})"
    if REPO in out.parents and (out.parts[len(REPO.parts)] in
                                {"mtl_moe", "hls", "sim", "hw_tests", "tests", "bench", "bitstreams",
                                 "notebooks", "requirements", ".git", ".ci", "docs"}):
        return f"it is inside the mtl-moe sources ({out.relative_to(REPO).parts[0]}/)"
    return None


def _place(out_dir: str | Path, kind: str) -> Path:
    """``out_dir`` as a path, refused if it is a protected place or a file."""
    out = Path(out_dir).expanduser()
    why = _protected(out.resolve())
    if why:
        raise OutputDirError(f"refusing to write output into {out_dir}: {why}; choose a new folder")
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{out_dir} is a file, not a folder; choose a new folder for the {kind}")
    return out


def read_marker(out: Path) -> dict | None:
    """The folder's ownership record, or None when mtl-moe did not make it."""
    f = out / MARKER
    if not f.is_file():
        return None
    try:
        m = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("files"), list) else None


def _write_marker(out: Path, kind: str, files: list[str]) -> None:
    tmp = out / (MARKER + ".tmp")
    rec = {"tool": "mtl-moe", "kind": kind, "files": sorted(set(files))}
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    os.replace(tmp, out / MARKER)


def record(out: str | Path, paths: list[str | Path], kind: str | None = None) -> None:
    """Add ``paths`` (inside ``out``) to the files ``out``'s record says mtl-moe wrote."""
    d = Path(out)
    m = read_marker(d) or {"kind": kind or "output", "files": []}
    rel = [str(Path(p).resolve().relative_to(d.resolve())) for p in paths]
    _write_marker(d, kind or m.get("kind", "output"), m["files"] + rel)


def _remove_owned(out: Path, marker: dict) -> None:
    """Delete the files the record lists (nothing else), then the folders they leave empty."""
    root = out.resolve()
    dirs: set[Path] = set()
    for rel in marker["files"]:
        p = (out / rel)
        if root not in p.resolve().parents:  # a record edited to point outside: never follow it
            continue
        if p.is_file() or p.is_symlink():
            p.unlink()
            dirs.update(q for q in p.parents if root in q.resolve().parents)
    for d in sorted(dirs, key=lambda q: len(q.parts), reverse=True):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    _write_marker(out, marker.get("kind", "output"), [])


def claim(out_dir: str | Path, kind: str, force: bool = False, reuse: bool = False,
          option: str = "--force") -> Path:
    """Make ``out_dir`` ready for a new ``kind`` output and return it.

    A new or empty folder is claimed. A folder holding our record is refused unless ``force``
    (then the files the record lists are removed) or ``reuse`` (``--resume``: kept as it is). Any
    other non-empty folder, and every protected place, is refused with the reason."""
    out = _place(out_dir, kind)
    _clean_partials(out)
    if out.is_dir() and any(p.name != MARKER for p in out.iterdir()):
        marker = read_marker(out)
        if marker is None:
            old = any((out / f).is_file() for f in ("checkpoint.pt", "export.json", "dse.json", "perf.json"))
            hint = (" (if an older mtl-moe made it, before folders were recorded, delete it yourself)"
                    if old else "")
            raise OutputDirError(f"{out_dir} is not empty and mtl-moe did not make it (no {MARKER}){hint}: "
                                 f"nothing there is removed, {option} or not; choose a new or empty folder")
        if reuse:
            return out
        if not force:
            raise OutputDirError(f"{out_dir} already holds an mtl-moe {marker.get('kind', 'output')}; pass "
                                 f"{option} to replace it (only the files mtl-moe wrote there are removed)")
        _remove_owned(out, marker)
    out.mkdir(parents=True, exist_ok=True)
    if read_marker(out) is None:
        _write_marker(out, kind, [])
    return out


def _partial_name(out: Path) -> str:
    return f".{out.name}.partial-"


def _clean_partials(out: Path) -> None:
    """Remove half-built siblings of ``out`` left by a run that was killed (they are ours)."""
    parent = out.parent
    if not parent.is_dir():
        return
    for p in parent.glob(_partial_name(out) + "*"):
        pid = p.name[len(_partial_name(out)):]
        # only a sibling staged() made (our record inside, a pid suffix) whose process is gone: an
        # export still running in another process keeps its half-built folder
        if p.is_dir() and (p / MARKER).is_file() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output(out_dir: str | Path, kind: str, force: bool = False) -> None:
    """The refusals of :func:`staged` alone, before any work is done (nothing is created)."""
    out = _place(out_dir, kind)
    if out.is_dir() and any(p.name != MARKER for p in out.iterdir()):
        marker = read_marker(out)
        if marker is None or (marker["files"] and not force):
            claim(out, kind, force=False)  # raises with the reason


@contextmanager
def staged(out_dir: str | Path, kind: str, force: bool = False) -> Iterator[Path]:
    """Claim ``out_dir``, then yield a hidden sibling folder to write the new output into; on
    success its files replace the previous output's (recorded as ours), on any error or kill the
    previous output is untouched."""
    out = Path(out_dir).expanduser()
    claim(out, kind, force=force, reuse=True)  # checks only: nothing is removed before success
    marker = read_marker(out)
    if marker and marker["files"] and not force and any(p.name != MARKER for p in out.iterdir()):
        raise OutputDirError(f"{out_dir} already holds an mtl-moe {marker.get('kind', 'output')}; pass "
                             "--force to replace it (only the files mtl-moe wrote there are removed)")
    tmp = out.parent / f"{_partial_name(out)}{os.getpid()}"
    if tmp.exists():  # a leftover of an earlier process with our pid: removed only if it is ours
        if not (tmp / MARKER).is_file():
            raise OutputDirError(f"{tmp} is in the way of the staging folder and mtl-moe did not make it; "
                                 "move it away and run again")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _write_marker(tmp, kind, [])
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    new = [str(p.relative_to(tmp)) for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != MARKER]
    clash = [r for r in new if (out / r).exists() and r not in (marker or {}).get("files", [])]
    if clash:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputDirError(f"{out_dir} holds {clash[0]}, which mtl-moe did not write; the new {kind} "
                             "would replace it: move it away or choose a new folder")
    for rel in new:  # same names are replaced atomically, one file at a time
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dst)
    if marker:  # then the previous output's files the new one does not have
        _remove_owned(out, {**marker, "files": [f for f in marker["files"] if f not in set(new)]})
    _write_marker(out, kind, new)
    shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def owned(out_dir: str | Path, kind: str, force: bool = False, reuse: bool = False,
          option: str = "--force") -> Iterator[Path]:
    """Claim ``out_dir`` (see :func:`claim`) for a command that writes into it in place, and record
    every file that appeared while it ran as ours — also when it fails or is interrupted, so a
    later ``--force`` removes a half-written run too."""
    out = claim(out_dir, kind, force=force, reuse=reuse, option=option)
    before = {p for p in out.rglob("*") if p.is_file()}
    try:
        yield out
    finally:
        if out.is_dir():
            new = [p for p in out.rglob("*") if p.is_file() and p not in before and p.name != MARKER
                   and not p.name.startswith(MARKER)]
            if new:
                record(out, new)

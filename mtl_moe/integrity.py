"""An export folder checked against its own record before anything runs on it.

``export.json`` records the SHA-256 of ``weights.bin`` and of ``config.h``; a flipped byte in the
weights or a hand-edited header otherwise shows up only as thousands of mismatching values with no
cause. Every consumer of an export (``mtl-moe csim``, ``mtl-moe run``, the deployment driver) calls
:func:`verify_export` first and gets one line naming the damaged file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


class ExportIntegrityError(ValueError):
    """A file of an export differs from what ``export.json`` says the export wrote."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_export(export_dir: str | Path) -> dict:
    """Check weights.bin (length and SHA-256) and config.h (SHA-256, where recorded); return
    export.json. Raises :class:`ExportIntegrityError` / ``FileNotFoundError`` naming the file."""
    d = Path(export_dir)
    meta_f = d / "export.json"
    if not meta_f.is_file():
        raise FileNotFoundError(f"{meta_f} is missing: is {d} an mtl-moe export folder?")
    meta = json.loads(meta_f.read_text())
    w = d / "weights.bin"
    if not w.is_file():
        raise FileNotFoundError(f"{w} is missing: re-export with `mtl-moe export ... --force`")
    man_f = d / "weights.json"
    if man_f.is_file():
        want = json.loads(man_f.read_text()).get("bytes")
        if want is not None and w.stat().st_size != want:
            raise ExportIntegrityError(f"{w} has {w.stat().st_size} bytes, the export wrote {want}: "
                                       "re-export, or restore the file")
    if _sha(w) != meta["weights_sha256"]:
        raise ExportIntegrityError(f"{w} is not the file this export wrote (SHA-256 differs from "
                                   "export.json): re-export, or restore the file")
    h = d / "config.h"
    if "config_h_sha256" in meta:
        if not h.is_file():
            raise FileNotFoundError(f"{h} is missing: re-export with `mtl-moe export ... --force`")
        if _sha(h) != meta["config_h_sha256"]:
            raise ExportIntegrityError(f"{h} was changed after export (SHA-256 differs from export.json): "
                                       "the kernels would no longer match the model; re-export instead "
                                       "of editing it")
    return meta

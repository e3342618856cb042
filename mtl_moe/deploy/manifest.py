"""The overlay manifest: which model, weights, IP and tools a bitstream was built for.

``bitstreams/`` builds ``<name>.bit`` + ``<name>.hwh`` from an export and writes ``<name>.json``
beside them (:func:`write_manifest`). Before it touches a register the driver checks that manifest
against the export it was given (:func:`check_overlay`): a bitstream built for other weights, another
config or another register map would compute garbage without any error, so a mismatch is refused
with the field, the overlay's value and the export's value.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "mtl-moe overlay v1"
# PYNQ board images for the ZCU104 and the Vivado / Vitis HLS release each was built with
# (../shared/REFERENCE.md): build the overlay with the same release as the image it runs on.
PYNQ_TOOLS = {"3.1": "2024.1", "4.0": "2025.2"}


class ManifestMismatch(ValueError):
    """The overlay was built for something other than this export."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expected_fields(export_dir: str | Path) -> dict[str, Any]:
    """What an overlay for this export must say: config/weights hashes, VLNV, register map, part."""
    d = Path(export_dir)
    meta = json.loads((d / "export.json").read_text())
    return {"format": FORMAT, "config_hash": meta["config_hash"], "weights_sha256": meta["weights_sha256"],
            "hw": meta["hw"], "ip_vlnv": meta["ip_vlnv"], "part": meta["part"],
            "regmap": json.loads((d / "regmap.json").read_text())}


def write_manifest(export_dir: str | Path, bitfile: str | Path, pynq_version: str,
                   tool_version: str | None = None) -> Path:
    """<bit stem>.json beside an overlay built from export_dir (needs the .bit and the .hwh)."""
    if pynq_version not in PYNQ_TOOLS:
        raise ValueError(f"PYNQ version {pynq_version!r} unknown; supported: {sorted(PYNQ_TOOLS)}")
    bit = Path(bitfile)
    hwh = bit.with_suffix(".hwh")
    for f in (bit, hwh):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: an overlay is a .bit and a .hwh with the same stem")
    want = PYNQ_TOOLS[pynq_version]
    if tool_version is not None and tool_version != want:
        raise ValueError(f"the overlay was built with Vivado {tool_version}, but PYNQ {pynq_version} images "
                         f"need Vivado/Vitis HLS {want}")
    man = {**expected_fields(export_dir), "tools": {"pynq": pynq_version, "vivado": want, "vitis_hls": want},
           "bit": bit.name, "bit_sha256": _sha256(bit), "hwh": hwh.name, "hwh_sha256": _sha256(hwh)}
    out = bit.with_suffix(".json")
    out.write_text(json.dumps(man, indent=1) + "\n")
    return out


def check_overlay(bitfile: str | Path, export_dir: str | Path) -> dict[str, Any]:
    """Refuse an overlay whose manifest (or files) do not match this export; returns the manifest."""
    bit = Path(bitfile)
    path = bit.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: every overlay needs the manifest `make -C bitstreams` "
                                "writes beside the .bit (it says which export the bitstream was built for)")
    man = json.loads(path.read_text())
    for name, want in expected_fields(export_dir).items():
        if man.get(name) != want:
            got = man.get(name)
            raise ManifestMismatch(f"overlay {bit.name} does not match export {Path(export_dir)}: field "
                                   f"{name!r} is {_short(got)} in the overlay, {_short(want)} in the export")
    for f, key in ((bit, "bit_sha256"), (bit.with_suffix(".hwh"), "hwh_sha256")):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing")
        if _sha256(f) != man.get(key):
            raise ManifestMismatch(f"{f.name} changed after its manifest was written (field {key!r}): "
                                   "rebuild with `make -C bitstreams` or restore the file")
    return man


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."

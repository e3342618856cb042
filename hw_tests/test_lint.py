"""Every SystemVerilog unit passes `verilator --lint-only -Wall` (no warning waived)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

RTL = sorted((Path(__file__).resolve().parent / "rtl").glob("*.sv"))


@pytest.mark.parametrize("src", RTL, ids=[p.stem for p in RTL])
def test_lint_clean(verilator, src):
    r = subprocess.run([verilator, "--lint-only", "-Wall", f"-I{src.parent}", str(src)], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr

"""The simulated-time bound of the cocotb tests (cocotb_util's sim_timeout / cycles_timeout /
export_timeout) does what it is for: a bench whose unit never answers fails with cocotb's
SimTimeoutError at its bound, naming itself, instead of simulating until pytest's wall-clock limit;
and no ``@cocotb.test`` in hw_tests/ goes without a bound (read from the sources, so a new test that
forgets one fails here)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import cocotb
import pytest
from cocotb_util import CLOCK_NS, TIMEOUT_FLOOR_US, cycles_timeout, reset, sim_timeout

HERE = Path(__file__).resolve().parent
NEVER_CYCLES = 2_000  # what the never-answering bench is "expected" to take: 5 x 20 us = the 100 us floor
BOUND_HELPERS = {"sim_timeout", "cycles_timeout", "export_timeout"}


@cocotb.test(**cycles_timeout(NEVER_CYCLES))
async def mac_tile_that_is_never_fed_never_answers(dut):
    """in_valid stays low, so out_valid never rises: without the bound this awaits forever while the
    clock runs."""
    from cocotb.triggers import RisingEdge

    await reset(dut)
    await RisingEdge(dut.out_valid)
    raise AssertionError("out_valid rose although no input was given")  # the unit answered: not this test


def _cocotb_tests(path: Path) -> list[tuple[str, ast.Call | None]]:
    """Each ``@cocotb.test`` function of a file with its decorator call (None: bare ``@cocotb.test``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        for d in node.decorator_list:
            f = d.func if isinstance(d, ast.Call) else d
            if isinstance(f, ast.Attribute) and f.attr == "test" and getattr(f.value, "id", "") == "cocotb":
                out.append((node.name, d if isinstance(d, ast.Call) else None))
    return out


def _bounded(call: ast.Call | None) -> bool:
    """timeout_time given directly, or ``**`` one of cocotb_util's bound helpers."""
    if call is None:
        return False
    for k in call.keywords:
        if k.arg == "timeout_time":
            return True
        helper = getattr(k.value.func, "id", "") if isinstance(k.value, ast.Call) else ""
        if k.arg is None and helper in BOUND_HELPERS:
            return True
    return False


def test_every_cocotb_test_has_a_sim_time_bound():
    """Every @cocotb.test in hw_tests/ (this file's included) has a timeout_time."""
    found = [(p.name, name, call) for p in sorted(HERE.glob("test_*.py")) for name, call in _cocotb_tests(p)]
    assert len(found) > 20, f"only {len(found)} cocotb tests found: the scan is broken"
    unbounded = [f"{f}::{name}" for f, name, call in found if not _bounded(call)]
    assert not unbounded, f"@cocotb.test without timeout_time (use cocotb_util.sim_timeout): {unbounded}"


def test_bound_scan_sees_a_missing_bound(tmp_path):
    """The scan itself can fail: a bare decorator and one with only skip= are unbounded."""
    f = tmp_path / "test_x.py"
    f.write_text("import cocotb\n@cocotb.test()\nasync def a(dut): pass\n"
                 "@cocotb.test(skip=False)\nasync def b(dut): pass\n"
                 "@cocotb.test(**sim_timeout(3))\nasync def c(dut): pass\n")
    assert [(n, _bounded(c)) for n, c in _cocotb_tests(f)] == [("a", False), ("b", False), ("c", True)]


def test_bound_is_factor_times_expected_with_a_floor():
    """5 x the expected time, at least the floor (the numbers of the rule, by hand)."""
    assert sim_timeout(0) == {"timeout_time": TIMEOUT_FLOOR_US, "timeout_unit": "us"}
    assert sim_timeout(972.5) == {"timeout_time": 4863, "timeout_unit": "us"}  # ceil(5 x 972.5)
    assert cycles_timeout(100_000) == {"timeout_time": 5000, "timeout_unit": "us"}  # 1 ms at 10 ns, x5


def test_a_unit_that_never_answers_fails_at_its_bound(verilator, tmp_path):
    """The bench above on the MAC tile fails as SimTimeoutError after exactly its bound of simulated
    time (5 x 2,000 cycles at 10 ns = 100 us, 10,000 cycles: ~1 s), and the report names the test."""
    from cocotb_tools.runner import get_results
    from cocotb_util import simulate

    from mtl_moe.hw import get_hw
    from mtl_moe.rtl import mac_tile_parameters

    params = mac_tile_parameters(get_hw("int8"), 8, 4)
    with pytest.raises(SystemExit):  # under pytest, cocotb's runner exits 1 when a cocotb test failed
        simulate("mac_tile", params, "test_sim_timeout", {}, tmp_path, ("-Wno-WIDTH",))
    results = tmp_path / "results.xml"
    assert get_results(results) == (1, 1), "the never-answering bench did not fail"
    (case,) = list(ET.parse(results).iter("testcase"))
    failure = case.find("failure")
    text = ET.tostring(case, encoding="unicode")
    assert case.get("name") == "mac_tile_that_is_never_fed_never_answers", text
    said = "" if failure is None else failure.get("message", "") + (failure.text or "")
    assert "SimTimeoutError" in said, text
    sim_ns = {q.get("name"): q.get("value") for q in case.iter("property")}["sim_time_duration"]
    bound_ns = cycles_timeout(NEVER_CYCLES)["timeout_time"] * 1000
    assert abs(float(sim_ns) - bound_ns) <= CLOCK_NS, (sim_ns, bound_ns)

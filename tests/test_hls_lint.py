"""The HLS lint (mtl_moe.hls_lint): each rule fails on a planted defect and passes its fix, and it runs on
a real export of the demo model.

Each rule has a pair of export-like folders in tests/fixtures/hls_lint/<rule>/: ``bad/`` plants the defect,
each planted line marked ``planted: <rule>``; ``fixed/`` is the same kernel written as the rule asks. The
rule must flag exactly the marked lines of ``bad/`` (so it can fail, and points where the defect is) and
nothing in ``fixed/`` (so it can pass, including the forms it must accept), and the plant must add no
findings of any other rule (the rules do not overlap).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mtl_moe.hls_lint import (
    OVERLAP_FUNCTIONS,
    RULES,
    Finding,
    LintError,
    _sim_macros,
    _simulation_only_lines,
    lint,
    main,
)

pytest.importorskip("clang.cindex", reason="the HLS lint needs the libclang wheel (pip install -e .[hls])")

FIXTURES = Path(__file__).parent / "fixtures" / "hls_lint"
PLANTED = re.compile(r"planted: ([\w-]+)")


@functools.cache
def _lint(folder: Path) -> tuple[Finding, ...]:
    """Every rule on a fixture folder, parsed once per test session."""
    return tuple(lint(folder))


def _planted(folder: Path, rule: str) -> set[tuple[str, int]]:
    """(file, line) of every line of a fixture marked ``planted: <rule>``."""
    return {
        (p.relative_to(folder).as_posix(), n)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if rule in PLANTED.findall(line)
    }


def test_every_rule_has_a_bad_and_a_fixed_fixture():
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(RULES)
    for rule in RULES:
        for variant in ("bad", "fixed"):
            folder = FIXTURES / rule / variant
            assert {"top.cpp", "config.h", "include/mtl_moe/k.h"} <= {
                p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
            }, folder
        assert _planted(FIXTURES / rule / "bad", rule), f"{rule}: no planted line marked"
        assert not _planted(FIXTURES / rule / "fixed", rule), f"{rule}: the fixed kernel marks a plant"


@pytest.mark.parametrize("rule", list(RULES))
def test_rule_flags_exactly_the_planted_lines(rule):
    bad = FIXTURES / rule / "bad"
    got = [f for f in _lint(bad) if f.rule == rule]
    assert got, f"{rule} did not flag its planted defect"
    assert {(f.file, f.line) for f in got} == _planted(bad, rule), "\n".join(map(str, got))
    assert all(f.message for f in got)


@pytest.mark.parametrize("rule", list(RULES))
def test_rule_passes_the_fixed_kernel(rule):
    got = [f for f in _lint(FIXTURES / rule / "fixed") if f.rule == rule]
    assert got == [], "\n".join(map(str, got))


@pytest.mark.parametrize("rule", list(RULES))
def test_a_plant_adds_findings_of_its_own_rule_only(rule):
    def others(folder: Path) -> Counter:
        return Counter(f.rule for f in _lint(folder) if f.rule != rule)

    assert others(FIXTURES / rule / "bad") == others(FIXTURES / rule / "fixed")


def test_rules_argument_selects_rules_and_refuses_unknown_ones():
    bad = FIXTURES / "narrow-maxi" / "bad"
    assert {f.rule for f in lint(bad, ["narrow-maxi"])} == {"narrow-maxi"}
    assert lint(bad, []) == []
    with pytest.raises(LintError, match="unknown rule"):
        lint(bad, ["no-such-rule"])


def test_a_clean_kernel_has_no_findings_and_the_dataflow_list_is_the_perf_models():
    # the fixed dataflow fixture is a whole clean export: both OVERLAP_FUNCTIONS as DATAFLOW regions
    assert OVERLAP_FUNCTIONS == ("linear_unit", "attention_core")
    assert lint(FIXTURES / "dataflow" / "fixed") == []


def test_allow_comment_needs_a_reason(tmp_path):
    src = FIXTURES / "wide-int" / "bad"
    for reason, left in (("C-sim reference value, checked by the testbench", 0), ("", 4)):
        dst = tmp_path / f"r{len(reason)}"
        shutil.copytree(src, dst)
        k = dst / "include" / "mtl_moe" / "k.h"
        k.write_text(
            "\n".join(
                f"{line}  // lint: allow wide-int {reason}" if "planted" in line else line
                for line in k.read_text().splitlines()
            )
            + "\n"
        )
        assert len(lint(dst, ["wide-int"])) == left, reason


def test_simulation_only_lines_follow_ifndef_ifdef_else_nesting_and_csim_macros():
    src = """int a;
#ifndef __SYNTHESIS__
int b;
#if X
int c;
#endif
#define FAST_CSIM 1
#else
int d;
#endif
#ifdef __SYNTHESIS__
int e;
#elif Y
int f;
#else
int g;
#endif
#if !defined(__SYNTHESIS__) && !defined(NO_FAST)
int h;
#else
int i;
#endif
#ifdef FAST_CSIM
int j;
#endif""".splitlines()

    def hidden(macros: frozenset[str]) -> set[str]:
        lines = _simulation_only_lines(src, macros)
        return {t.split()[1].rstrip(";") for n, t in enumerate(src, 1) if n in lines and t.startswith("int")}

    assert hidden(frozenset()) == {"b", "c", "f", "g", "h"}
    assert _sim_macros([src]) == {"FAST_CSIM"}  # defined only where synthesis never looks
    assert hidden(_sim_macros([src])) == {"b", "c", "f", "g", "h", "j"}


def test_cli_prints_findings_and_exits_1(capsys):
    assert main([str(FIXTURES / "unbounded-loop" / "bad")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert all(re.fullmatch(r"[\w./-]+:\d+: [\w-]+: .+", line) for line in out[:-1]), out
    assert "unbounded-loop: 3" in out[-1] and out[-1].startswith("hls_lint: ")
    assert main([str(FIXTURES / "unbounded-loop" / "bad"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["unbounded-loop"] == 3 and len(doc["findings"]) == sum(doc["counts"].values())
    assert main([str(FIXTURES / "dataflow" / "fixed")]) == 0


def test_cli_exits_2_with_one_line_on_a_missing_folder_or_a_parse_failure(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hls_lint: error: ") and err.count("\n") == 1 and "Traceback" not in err
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "dataflow" / "fixed", broken)
    (broken / "include" / "mtl_moe" / "k.h").write_text("static void f( { }\n")
    r = subprocess.run(
        [sys.executable, "-m", "mtl_moe.hls_lint", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr.startswith("hls_lint: error: clang cannot parse") and r.stderr.count("\n") == 1, r.stderr


def test_lint_on_the_demo_export_has_no_findings(demo_export, record_property):
    t = time.perf_counter()
    findings = lint(demo_export)
    # the time is recorded, not asserted: a loaded CI machine is no defect of the lint
    record_property("hls_lint_seconds", round(time.perf_counter() - t, 2))
    # the exported kernels pass every rule (each rule's planted-defect tests above show it can fail)
    record_property("hls_lint_counts", dict(Counter(f.rule for f in findings)))
    print("\n".join(map(str, findings)))
    assert all(isinstance(f, Finding) and f.rule in RULES for f in findings)
    assert findings == []


def test_readahead_catches_a_real_export_whose_weight_port_cannot_hide_the_latency(demo_export_of, tmp_path):
    """The w16a32 demo export with its weight bundles' num_read_outstanding cut to 2 (one burst in flight,
    the ping-pong depth the RTL first had): the rule flags both weight pragmas (one preset: a lint of a
    real export costs ~5 s; the clean-export test above lints both)."""
    dst = tmp_path / "export"
    shutil.copytree(demo_export_of("w16a32"), dst,
                    ignore=shutil.ignore_patterns("*.bin", "*.i64", "*.npz", "csim*"))
    top = (dst / "top.cpp").read_text()
    meta = json.loads((dst / "export.json").read_text())["axi_readahead"]
    assert (meta["outstanding"] - 1) * meta["burst"] >= meta["ahead_beats"] > meta["burst"]
    cut = top.replace(f"num_read_outstanding = {meta['outstanding']}", "num_read_outstanding = 2")
    (dst / "top.cpp").write_text(cut)
    got = lint(dst, ["readahead"])
    lines = [n for n, t in enumerate(cut.splitlines(), 1) if "m_axi port = weights" in t]
    assert len(lines) == 2 and [f.line for f in got] == lines, got
    assert all("first-beat latency is paid per burst" in f.message for f in got)


def test_readahead_refuses_an_export_without_the_latency_figures(tmp_path):
    """config.h missing one of the figures is a finding naming it; with none, a real export (export.json
    present) is a finding too, only an export-like fixture of another rule is not checked."""
    dst = tmp_path / "export"
    shutil.copytree(FIXTURES / "readahead" / "fixed", dst)
    assert lint(dst, ["readahead"]) == []
    header = re.sub(r"const int RD_AHEAD_BEATS = \d+;", "", (dst / "config.h").read_text())
    (dst / "config.h").write_text(header)
    got = lint(dst, ["readahead"])
    assert [(f.file, f.rule) for f in got] == [("config.h", "readahead")], got
    assert "no RD_AHEAD_BEATS:" in got[0].message
    for k in ("AXI_LATENCY", "RD_BURST"):
        header = re.sub(rf"const int {k} = \d+;", "", header)
    (dst / "config.h").write_text(header)
    assert lint(dst, ["readahead"]) == []
    (dst / "export.json").write_text("{}")
    got = lint(dst, ["readahead"])
    assert [(f.file, f.rule) for f in got] == [("config.h", "readahead")], got
    assert "no AXI_LATENCY, RD_AHEAD_BEATS, RD_BURST" in got[0].message

"""The README and docs/ are tested like code: the README fits its size budget, its tour and every docs
block marked ``<!-- runnable -->`` run as written (in order, in a temporary folder), and every relative
link and repository path they name exists.

The tour is what a newcomer types first; if a step's output folder or order drifts from what the next
step reads (the bug of issue 18: ``eval --baseline`` before the baseline was evaluated, ``exports/`` vs
``runs/``), this test fails at that step with its output.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 12 * 1024

# Pages other engineers write in parallel; the lead empties this list once they are merged.
PENDING: set[str] = set()  # pages linked before they were written (none now)

# Backticked paths starting with one of these folders are repository paths and must exist
# (runs/ and exports/ are what commands write, so they are not checked; nor are build caches).
REPO_DIRS = ("mtl_moe/", "hls/", "sim/", "bench/", "hw_tests/", "tests/", "bitstreams/", "notebooks/",
             "requirements/", "docs/", ".ci/")
# build caches, and the wheel's layout of the shipped folders (docs/install.md)
GENERATED = ("hw_tests/build/", "mtl_moe/_data/", "mtl_moe/notebooks/")


def _blocks(text: str) -> list[tuple[str, str, bool]]:
    """Fenced blocks as (language, body, runnable): runnable = preceded by ``<!-- runnable -->``."""
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        before = text[:m.start()].rstrip().splitlines()
        out.append((m.group(1), m.group(2), bool(before) and before[-1].strip() == "<!-- runnable -->"))
    return out


def tour_commands(text: str) -> list[str]:
    """The ``$ `` lines of the first console block under the README's tour heading."""
    section = text.split("## A ten-line tour", 1)[1].split("\n## ", 1)[0]
    blocks = [b for lang, b, _ in _blocks(section) if lang == "console"]
    assert blocks, "the README's tour has no ```console block"
    return [ln[2:] for ln in blocks[0].splitlines() if ln.startswith("$ ")]


def runnable_commands(text: str) -> list[str]:
    return [ln[2:] for lang, b, run in _blocks(text) if run and lang == "console"
            for ln in b.splitlines() if ln.startswith("$ ")]


def _run_all(cmds: list[str], cwd: Path) -> None:
    """Run each command in ``cwd``; stop at the first that fails, showing its output.

    ``mtl-moe ...`` runs in this process through ``mtl_moe.cli.main`` — the function the ``mtl-moe``
    console script calls (pyproject.toml) — which saves a Python + torch start per command (most of
    the tour's time on 2 cores); torch's thread count, which train/quantize set, is restored after.
    Anything else (``python ...``) runs as a subprocess."""
    import contextlib
    import io
    import os

    import torch

    from mtl_moe.cli import main

    threads, here = torch.get_num_threads(), Path.cwd()
    try:
        os.chdir(cwd)
        for cmd in cmds:
            argv = shlex.split(cmd)
            if argv[0] == "mtl-moe":
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    try:
                        rc = main(argv[1:])
                    except SystemExit as e:  # argparse: a bad option
                        rc = e.code if isinstance(e.code, int) else 2
                text = out.getvalue()[-2000:] + "\n" + err.getvalue()[-3000:]
            else:
                if argv[0] == "python":
                    argv[0] = sys.executable
                p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
                rc, text = p.returncode, p.stdout[-2000:] + "\n" + p.stderr[-3000:]
            assert rc == 0, f"`{cmd}` failed ({rc}):\n{text}"
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)


def test_readme_fits_budget() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, the budget is {README_MAX_BYTES}"


def test_tour_extraction_sees_every_step() -> None:
    """The tour covers train -> eval -> quantize -> export -> csim -> run in that order, in ten lines."""
    cmds = tour_commands(README.read_text())
    assert 5 <= len(cmds) <= 10
    order = [c.split()[1] for c in cmds if c.startswith("mtl-moe ")]
    steps = ["train", "quantize", "export", "csim", "run"]
    assert [s for s in order if s in steps] == steps, order


@pytest.fixture(scope="module")
def tour_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tour")
    _run_all(tour_commands(README.read_text()), d)
    return d


def test_readme_tour_runs_as_written(tour_dir: Path) -> None:
    for f in ("runs/demo/checkpoint.pt", "runs/demo/metrics.json", "runs/demo-w16a32/report.md",
              "runs/export-w16a32/csim.json", "runs/perf-demo-zcu104/perf.json"):
        assert (tour_dir / f).is_file(), f
    # a short run logs every step, so its loss.png has a curve, not one point (issue 18)
    hist = json.loads((tour_dir / "runs/demo/history.json").read_text())
    rows = hist["history"] if isinstance(hist, dict) else hist
    steps = [h["step"] for h in rows if "loss" in h]
    assert len(steps) >= 2 and steps == list(range(1, len(steps) + 1)), steps


def test_docs_runnable_blocks_run(tour_dir: Path) -> None:
    """Runnable docs blocks run after the tour (they may use its runs/), page by page in name order."""
    cmds = [c for p in DOCS for c in runnable_commands(p.read_text())]
    assert cmds, "no docs block is marked runnable"
    _run_all(cmds, tour_dir)


# ---- links and paths --------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", md.read_text(), flags=re.M)}


def _expand(path: str) -> list[str]:
    """``a.{json,md}`` -> ``a.json``, ``a.md``."""
    parts = re.split(r"\{([^}]*)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def broken_links(md: Path, text: str | None = None) -> list[str]:
    """Every relative link and backticked repository path of ``md`` that does not resolve."""
    text = md.read_text() if text is None else text
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # code blocks hold commands, not links
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        f = (md.parent / path).resolve() if path else md
        rel = f.relative_to(ROOT).as_posix() if f.is_relative_to(ROOT) else str(f)
        if rel in PENDING:
            continue
        if not f.exists():
            bad.append(f"{target}: no such file")
        elif anchor and f.suffix == ".md" and anchor not in _anchors(f):
            bad.append(f"{target}: no heading with anchor #{anchor}")
    for code in re.findall(r"`([^`\s]+)`", prose):
        if not code.startswith(REPO_DIRS) or code.startswith(GENERATED) or "<" in code:
            continue
        for p in _expand(code.rstrip(".,:;")):
            if p in PENDING:
                continue
            if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists()):
                bad.append(f"`{p}`: no such file in the repository")
    return bad


@pytest.mark.parametrize("md", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_resolve(md: Path) -> None:
    assert broken_links(md) == []


def test_every_docs_page_is_linked() -> None:
    """A page nobody links to is a page nobody finds: each is linked from the README or docs/index.md."""
    linked = README.read_text() + (ROOT / "docs/index.md").read_text()
    for p in DOCS:
        if p.name != "index.md":
            assert f"{p.name})" in linked, f"docs/{p.name} is linked from neither README nor docs/index.md"


def test_link_check_catches_planted_defects() -> None:
    """The checker is not vacuous: a missing page, a wrong anchor and a missing path are each reported."""
    text = ("[a](docs/nope.md) [b](docs/hls.md#no-such-heading) [c](docs/hls.md) [d](docs/install.md) "
            "`mtl_moe/nope.py` `sim/results/dse_export_{w16a32,nope}.json` `runs/anything`\n"
            "```bash\n[e](ignored-in-code.md)\n```\n")
    bad = broken_links(README, text)
    assert bad == ["docs/nope.md: no such file", "docs/hls.md#no-such-heading: no heading with anchor "
                   "#no-such-heading", "`mtl_moe/nope.py`: no such file in the repository",
                   "`sim/results/dse_export_nope.json`: no such file in the repository"], bad


def test_runnable_marker_and_tour_extraction() -> None:
    text = ("## A ten-line tour\n\n```console\n$ mtl-moe train --out x\nnot a command\n```\n\n## Next\n"
            "```console\n$ later\n```\n<!-- runnable -->\n```console\n$ mtl-moe config demo\n```\n"
            "```console\n$ not-runnable\n```\n")
    assert tour_commands(text) == ["mtl-moe train --out x"]
    assert runnable_commands(text) == ["mtl-moe config demo"]

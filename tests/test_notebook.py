"""The deployment notebook, executed headless against the simulated backend (as CI runs it), its
saved outputs checked independently against the golden model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "zcu104_multitask.ipynb"  # the source


def _execute(env: dict[str, str]) -> Path:
    pytest.importorskip("nbclient")
    from mtl_moe.deploy.notebook import execute

    out = Path(env.pop("MTL_MOE_NOTEBOOK_OUT"))
    return execute(out, env)


def _check_against_golden(export_dir: Path, out: Path) -> dict:
    from mtl_moe.csim import input_codes
    from mtl_moe.deploy.accelerator import Accelerator
    from mtl_moe.golden import GoldenModel

    res = json.loads((out / "results.json").read_text())
    acc = Accelerator(export_dir, backend="sim")
    g = GoldenModel(acc.config, acc.hw, acc.params)
    z = np.load(out / "outputs.npz")
    bad = 0
    for t in acc.config.tasks:
        got = acc.hw.act.to_float(g(input_codes(z["images"], acc.hw), t.name))
        bad += int((got != z[f"out_{t.name}"]).sum())
        want = acc.hw.act.to_float(g(input_codes(z["photo"][None], acc.hw), t.name))[0]
        bad += int((want != z[f"photo_{t.name}"]).sum())
    assert res["backend"] == "sim" and set(res["tasks"]) == {t.name for t in acc.config.tasks}
    return {"notebook_mismatches": res["mismatches"], "independent_mismatches": bad}


def test_notebook_runs_on_the_sim_backend_bit_exact_without_torch(tmp_path, demo_export_of):
    ex = demo_export_of("int8")
    out = tmp_path / "nb"
    blocker = tmp_path / "no_torch" / "torch"  # a PYNQ image has no torch: the kernel may not use it
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked: the board has none')\n")
    _execute({"MTL_MOE_EXPORT": str(ex), "MTL_MOE_NOTEBOOK_OUT": str(out), "MTL_MOE_OVERLAY": "",
              "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])})
    r = _check_against_golden(ex, out)
    assert r == {"notebook_mismatches": 0, "independent_mismatches": 0}, r
    # a figure per task on the samples (drawn in the notebook, saved beside it), the photograph's, latency
    acc_tasks = [t["name"] for t in json.loads((ex / "model_config.json").read_text())["tasks"]]
    for png in [*(f"predictions-{t}.png" for t in acc_tasks), "photo.png", "latency.png"]:
        assert (out / png).stat().st_size > 5000, png
    executed = (out / NOTEBOOK.name).read_text()  # the executed copy keeps its outputs
    assert "0 mismatching values" in executed
    # drawn inline by matplotlib: the task figures, the photograph's and the latency bars
    assert executed.count('"image/png"') == len(acc_tasks) + 2, executed.count('"image/png"')
    res = json.loads((out / "results.json").read_text())  # the latency table's split, per task
    assert res["heads"] == "host" and "head (host)" in executed and "end to end" in executed
    for v in res["tasks"].values():
        parts = [v[k] for k in ("pre_s", "accelerator_s", "head_s", "post_s")]
        assert v["heads"] == "host" and all(p > 0 for p in parts) and sum(parts) <= v["end_to_end_s"], v


def test_notebook_builds_a_model_when_no_export_exists(tmp_path):
    out = tmp_path / "nb"
    _execute({"MTL_MOE_EXPORT": str(tmp_path / "missing"), "MTL_MOE_NOTEBOOK_OUT": str(out),
              "MTL_MOE_NOTEBOOK_STEPS": "3", "MTL_MOE_OVERLAY": ""})
    r = _check_against_golden(out / "model" / "export-w16a32", out)
    assert r == {"notebook_mismatches": 0, "independent_mismatches": 0}, r


def test_notebooks_ship_as_the_pynq_entry_point():
    from importlib.metadata import entry_points

    eps = {e.name: e.value for e in entry_points(group="pynq.notebooks")}
    assert eps.get("mtl-moe") == "mtl_moe.notebooks"
    import mtl_moe.notebooks as nbs

    assert (Path(nbs.__file__).parent / NOTEBOOK.name).is_file()

"""The task heads on the accelerator (KernelParams.heads_on_accel): the C-simulated top returns the
task's full-resolution prediction, bit for bit the golden model's ``GoldenModel.__call__``.

CI runs the demo model (pup-lite) on both presets, the lint and a planted defect (caught by the C
testbench at -O2); the passing testbench, the pup and linear decoders, the sanitizer builds, a
second defect, one defect per word-wide head loop and the hypothesis configs are under ``slow``
(each compile takes ~12 s; CI is at its time budget).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_golden import _scaled_model, small_configs

from mtl_moe.config import ConfigError, MoEViTConfig, get_preset
from mtl_moe.csim import CSim, input_codes, run_testbench
from mtl_moe.csim import test_images as demo_images
from mtl_moe.golden import GoldenModel
from mtl_moe.hls_export import HEAD_CONV, HEAD_UP, KernelParams, export, head_schedule
from mtl_moe.hw import get_hw
from mtl_moe.quant import QuantM3ViT

HEADS = KernelParams(heads_on_accel=True)


def _export(cfg: MoEViTConfig, hw: str, out: Path, seed: int = 1) -> Path:
    export(QuantM3ViT(_scaled_model(cfg, seed, 1.0), get_hw(hw)), out, force=True, kp=HEADS)
    return out


@pytest.fixture(scope="module")
def heads_export_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``heads_export_of(hw, decoder)``: the demo preset (decoder replaced) with its heads exported."""
    made: dict[tuple[str, str], Path] = {}

    def get(hw: str, decoder: str) -> Path:
        if (hw, decoder) not in made:
            cfg = get_preset("demo").replace(decoder=decoder)
            made[hw, decoder] = _export(cfg, hw, tmp_path_factory.mktemp(f"heads-{decoder}-{hw}"))
        return made[hw, decoder]

    return get


def _mismatches(export_dir: Path, n_images: int = 2) -> dict[str, tuple[int, int]]:
    """Per task (mismatching codes, codes) of the C-sim's prediction against golden ``__call__``."""
    sim = CSim(export_dir)
    cfg = sim.config
    x = input_codes(demo_images(cfg, n_images, 0), sim.hw)
    golden = GoldenModel(cfg, sim.hw, sim.params)
    out = {}
    for t in cfg.tasks:
        y, want = sim.prediction(x, t.name), golden(x, t.name)
        assert y.shape == want.shape == (n_images, t.out_channels, *cfg.img_size)
        assert len(np.unique(want)) > 1, "a constant prediction would prove little"
        out[t.name] = (int((y != want).sum()), int(y.size))
    assert sim.wrap_overflows == 0
    return out


def _assert_exact(r: dict[str, tuple[int, int]]) -> None:
    assert all(bad == 0 for bad, _ in r.values()), r


@pytest.mark.parametrize("hw", ["w16a32", "int8"])
def test_heads_on_accelerator_equal_golden_demo_every_task(heads_export_of, hw):
    r = _mismatches(heads_export_of(hw, "pup-lite"))
    assert set(r) == {t.name for t in get_preset("demo").tasks}
    _assert_exact(r)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["pup", "linear"])
@pytest.mark.parametrize("hw", ["w16a32", "int8"])
def test_heads_on_accelerator_equal_golden_pup_and_linear(heads_export_of, hw, decoder):
    _assert_exact(_mismatches(heads_export_of(hw, decoder)))


def _tb_mismatches(export_dir: Path, sanitize: bool = False) -> tuple[int, int, str]:
    tb = run_testbench(export_dir, "-O2", sanitize=sanitize)
    m = re.search(r"mismatches: (\d+) of (\d+)", tb.stdout)
    assert m, tb.stdout + tb.stderr[-3000:]
    return int(m.group(1)), int(m.group(2)), tb.stdout + tb.stderr[-3000:]


def test_head_passes_are_lint_clean(heads_export_of):
    from mtl_moe.hls_lint import lint

    assert list(lint(heads_export_of("w16a32", "pup-lite"))) == []


@pytest.mark.slow  # a third compile (CI time): the library build above runs the same top at -O2
def test_heads_testbench_compares_the_prediction_at_O2(heads_export_of):
    bad, n, log = _tb_mismatches(heads_export_of("w16a32", "pup-lite"))
    cfg = get_preset("demo")
    assert bad == 0 and n == cfg.tasks[0].out_channels * cfg.img_size[0] * cfg.img_size[1], log


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["pup-lite", "pup"])
@pytest.mark.parametrize("hw", ["w16a32", "int8"])
def test_heads_testbench_under_sanitizers(heads_export_of, hw, decoder):
    bad, _, log = _tb_mismatches(heads_export_of(hw, decoder), sanitize=True)
    assert bad == 0 and "runtime error" not in log and "AddressSanitizer" not in log, log


def _planted(export_dir: Path, tmp: Path, old: str, new: str) -> tuple[int, int, str]:
    bad = tmp / "bad"
    shutil.copytree(export_dir, bad)
    k = bad / "include" / "mtl_moe" / "kernels.h"
    src = k.read_text()
    assert src.count(old) == 1, old
    k.write_text(src.replace(old, new))
    return _tb_mismatches(bad)


def test_a_wrong_upsampling_phase_is_caught(heads_export_of, tmp_path):
    """Planted defect: the bilinear source position without its half-pixel offset."""
    bad, n, log = _planted(heads_export_of("w16a32", "pup-lite"), tmp_path,
                           "s0 = 2 * i + 1 - f", "s0 = 2 * i - f")
    assert bad > 0, log


@pytest.mark.slow
def test_an_off_by_one_conv_padding_is_caught(heads_export_of, tmp_path):
    """Planted defect: the 3x3 window shifted one column left (padding 2 on the left, 0 on the right)."""
    bad, n, log = _planted(heads_export_of("w16a32", "pup"), tmp_path,
                           "xx = x + t % 3 - 1", "xx = x + t % 3 - 2")
    assert bad > 0, log


_WORD_WIDE_DEFECTS = {  # one per word-wide head loop: (kernels.h text, its planted replacement)
    "im2col lane mux a tap off": ("v[l] = full[kk % 9][kk / 9];", "v[l] = full[(kk + 1) % 9][kk / 9];"),
    "im2col group's last word dropped": ("pn = kw9 - 9 * q < 9 ? kw9 - 9 * q : 9;",
                                         "pn = kw9 - 9 * q < 9 ? kw9 - 9 * q : 8;"),
    "read_rows band word written half-filled": ("if (k0 % T_IN == T_IN - HEAD_G && k0 / T_IN < cw) band",
                                                "if (k0 % T_IN == 0 && k0 / T_IN < cw) band"),
    "pack_rows field one lane off": ("head_field(carry, k, a);", "head_field(carry, k + 1, a);"),
    "upsample every lane from lane 0": ("head_field(carry, k0 + l, v[l]);",
                                        "head_field(carry, k0 + l, v[0]);"),
    "upsample x shift one short": ("(ap_int<act_t::W + LFW + 3>(a00) << (LFW + 1)) + d0 * lxn",
                                   "(ap_int<act_t::W + LFW + 3>(a00) << LFW) + d0 * lxn"),
}


@pytest.mark.slow
@pytest.mark.parametrize("defect", list(_WORD_WIDE_DEFECTS))
def test_a_defect_in_a_word_wide_head_loop_is_caught(heads_export_of, tmp_path, defect):
    """Planted defects in the loops that move words (pup: every loop kind, the final resize to the
    prediction); each made 4,095 or 4,096 of the testbench's 4,096 codes differ when tried."""
    bad, n, log = _planted(heads_export_of("w16a32", "pup"), tmp_path, *_WORD_WIDE_DEFECTS[defect])
    assert bad > 0, log


def test_head_schedule_follows_the_decoder():
    """The passes of each decoder (golden ``_head``): pup: 2 convs, 1 x2, the classifier, the x2 resize;
    pup-lite: conv and x2 per stage, the classifier at full resolution; linear: classifier, x4 resize."""
    demo = get_preset("demo")
    kinds = {d: [(o["kind"], o["k"], o["lfh"]) for o in head_schedule(demo.replace(decoder=d), HEADS)]
             for d in ("pup", "pup-lite", "linear")}
    C, U = HEAD_CONV, HEAD_UP
    assert kinds["pup"] == [(C, 3, 0), (U, 0, 1), (C, 3, 0), (C, 1, 0), (U, 0, 1)]
    assert kinds["pup-lite"] == [(C, 3, 0), (U, 0, 1), (C, 3, 0), (U, 0, 1), (C, 1, 0)]
    assert kinds["linear"] == [(C, 1, 0), (U, 0, 2)]
    for d in kinds:
        assert all(o["band"] >= 1 for o in head_schedule(demo.replace(decoder=d), HEADS))


def test_m3vit_tiny_head_bands_fit_the_backbone_buffers():
    """m3vit-tiny's PUP head: every pass has a band of at least one output row in HID / QKV / F."""
    ops = head_schedule(get_preset("m3vit-tiny"), HEADS)
    assert [o["band"] for o in ops if o["kind"] == HEAD_CONV][0] >= 1
    assert all(o["band"] >= 1 for o in ops), ops


_SETTINGS = dict(deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.mark.slow
@settings(max_examples=8, **_SETTINGS)
@given(cfg=small_configs(("pup", "pup-lite", "linear")), seed=st.integers(0, 2**16),
       hw_name=st.sampled_from(["w16a32", "int8"]), task=st.integers(0, 2))
def test_random_configs_heads_equal_golden(tmp_path_factory, cfg, seed, hw_name, task):
    out = tmp_path_factory.mktemp("rand-heads")
    try:
        _export(cfg, hw_name, out, seed)
    except ConfigError:
        assume(False)  # a head whose bands do not fit (refused at export, by name)
    sim = CSim(out)
    x = torch.randn(2, cfg.in_chans, *cfg.img_size, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64).numpy() * 2
    codes = input_codes(x, sim.hw)
    want = GoldenModel(cfg, sim.hw, sim.params)(codes, task)
    y = sim.prediction(codes, task)
    assert int((y != want).sum()) == 0, (hw_name, cfg)
    shutil.rmtree(out)


def test_run_heads_accelerator_on_the_sim_backend_reports_0_mismatches(heads_export_of, capsys):
    """`mtl-moe run --heads accelerator --json`: every task's prediction from the C-sim top, per-task
    mismatches against golden, heads "accelerator"; heads "host" is refused for this export."""
    import json

    from mtl_moe.cli import main
    from mtl_moe.deploy.accelerator import Accelerator

    ex = heads_export_of("int8", "pup-lite")
    assert main(["run", str(ex), "--heads", "accelerator", "--json", "--images", "2"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["heads"] == "accelerator" and r["mismatches"] == 0, r
    cfg = get_preset("demo")
    for t in cfg.tasks:
        v = r["tasks"][t.name]
        assert v["heads"] == "accelerator" and v["mismatches"] == 0 and v["feature_values"] is None, v
        assert v["values"] == 2 * t.out_channels * cfg.img_size[0] * cfg.img_size[1]
    with pytest.raises(ValueError, match="heads on the accelerator"):
        Accelerator(ex, backend="sim", heads="host")
    assert main(["run", str(ex), "--json", "--tasks", cfg.tasks[0].name]) == 0  # the default, auto
    assert json.loads(capsys.readouterr().out)["heads"] == "accelerator"


def test_heads_auto_follows_the_export(heads_export_of, demo_export_of):
    """``heads="auto"`` is what the export was built for: its top's output buffer decides."""
    from mtl_moe.deploy.accelerator import Accelerator

    assert Accelerator(heads_export_of("int8", "pup-lite"), backend="sim").heads == "accelerator"  # default
    assert Accelerator(demo_export_of("int8"), backend="sim", heads="auto").heads == "host"


def test_notebook_runs_the_heads_on_the_accelerator_bit_exact(heads_export_of, tmp_path):
    """The deployment notebook, unchanged, on an export with the heads in its top (sim backend):
    every prediction comes from the C-sim top, 0 mismatches against golden (its own check and an
    independent one), and the latency table labels the head part by where it ran."""
    import json

    from test_notebook import _check_against_golden, _execute

    ex, out = heads_export_of("int8", "pup-lite"), tmp_path / "nb"
    _execute({"MTL_MOE_EXPORT": str(ex), "MTL_MOE_NOTEBOOK_OUT": str(out), "MTL_MOE_OVERLAY": ""})
    r = _check_against_golden(ex, out)
    assert r == {"notebook_mismatches": 0, "independent_mismatches": 0}, r
    res = json.loads((out / "results.json").read_text())
    assert res["heads"] == "accelerator" and all(v["heads"] == "accelerator" for v in res["tasks"].values())
    executed = (out / "zcu104_multitask.ipynb").read_text()
    assert "head (accelerator)" in executed and "head (host)" not in executed

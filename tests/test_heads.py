"""The host-side heads' fast exact path: golden's integer matmul through float64 BLAS limbs.

The claim: ``golden.int_matmul`` returns numpy's int64 ``a @ b`` bit for bit (including its int64
wrap-around), so every head computed with it is today's head. The reference is numpy's own int64
matmul (a plain loop, no BLAS), the head reference is golden's head with ``int_matmul`` swapped
back to that loop; each check shows it can fail with a deliberately too-wide limb plan.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtl_moe import csim, golden
from mtl_moe.config import get_preset
from mtl_moe.deploy.backends import CSimDevice
from mtl_moe.golden import GoldenModel, int_matmul
from mtl_moe.hw import HW_PRESETS, get_hw
from mtl_moe.quant import QuantM3ViT, export_codes
from mtl_moe.quant import int_matmul as torch_int_matmul

I64 = np.iinfo(np.int64)


def _loop_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy's int64 matmul: what golden.linear computed before the limb path."""
    with np.errstate(over="ignore"):
        return np.asarray(a, np.int64) @ np.asarray(b, np.int64)


def _codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Random signed codes of ``bits`` bits, with the range's two ends planted in."""
    lo, hi = (I64.min, I64.max) if bits >= 64 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    x = rng.integers(lo, hi, shape, dtype=np.int64, endpoint=True)
    flat = x.reshape(-1)
    flat[: min(2, flat.size)] = [lo, hi][: min(2, flat.size)]
    return x


@pytest.mark.parametrize("seed", range(6))
def test_int_matmul_is_int64_matmul_on_random_shapes_and_widths(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bad = 0
    for _ in range(40):
        k = int(rng.choice([1, 2, 7, 64, 300, 2305]))
        m, n = (int(v) for v in rng.integers(1, 12, 2))
        a = _codes(rng, (m, k), int(rng.integers(1, 65)))
        b = _codes(rng, (k, n), int(rng.integers(1, 65)))
        bad += int((int_matmul(a, b) != _loop_matmul(a, b)).sum())
    assert bad == 0, f"{bad} mismatching values"


def test_int_matmul_at_the_int64_edges_and_in_batches() -> None:
    rng = np.random.default_rng(7)
    edges = np.array([[I64.min, I64.max, -1, 0, 1, I64.min + 1]], np.int64)
    for b in (edges.T, np.full((6, 3), I64.min, np.int64), _codes(rng, (6, 4), 64)):
        assert (int_matmul(edges, b) == _loop_matmul(edges, b)).all()
    # the sizes golden refuses beyond (|products| < 2^62) and the 36-bit products of w16a32
    a, w = _codes(rng, (5, 2304), 32), _codes(rng, (2304, 7), 16)
    assert (int_matmul(a, w) == _loop_matmul(a, w)).all()
    a3, b3 = _codes(rng, (2, 3, 9, 40), 40), _codes(rng, (2, 3, 40, 5), 20)  # stacked (attention's A·V)
    assert (int_matmul(a3, b3) == _loop_matmul(a3, b3)).all()
    x4 = _codes(rng, (2, 4, 4, 50), 33)  # (B, H, W, K) im2col columns against a 2-D weight
    assert (int_matmul(x4, w[:50]) == _loop_matmul(x4, w[:50])).all()
    assert int_matmul(np.zeros((3, 0), np.int64), np.zeros((0, 2), np.int64)).tolist() == [[0, 0]] * 3


def test_the_quantized_torch_path_is_the_same_function() -> None:
    rng = np.random.default_rng(3)
    a, b = _codes(rng, (4, 9, 100), 45), _codes(rng, (100, 6), 30)
    got = torch_int_matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert (got == _loop_matmul(a, b)).all()


def test_the_matmul_check_catches_a_limb_plan_that_overfills_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    # same-signed operands near their width: limb sums really reach the plan's bound
    a, b = rng.integers(1 << 38, 1 << 39, (8, 2304)), rng.integers(1 << 28, 1 << 29, (2304, 8))
    assert (int_matmul(a, b) == _loop_matmul(a, b)).all()
    monkeypatch.setattr(golden, "_F64_EXACT_BITS", 64)  # limb sums up to 2^64: float64 rounds
    assert int((int_matmul(a, b) != _loop_matmul(a, b)).sum()) > 0


def _demo(decoder: str, hw_name: str) -> tuple[GoldenModel, np.ndarray]:
    """The demo model (weights scaled to use the types' range, as tests/test_golden.py does) with
    ``decoder``, its golden model and two validation scenes' codes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_golden import _scaled_model

    cfg = get_preset("demo").replace(decoder=decoder)
    hw = get_hw(hw_name)
    gain = 1.0 if hw_name == "w16a32" else 0.5  # int8's narrow activations: keep inside the range
    q = QuantM3ViT(_scaled_model(cfg, 1, gain), hw)
    return GoldenModel(cfg, hw, export_codes(q)), csim.input_codes(csim.test_images(cfg, 2, 0), hw)


def _head_mismatches(g: GoldenModel, x: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(# mismatching codes, # codes) of every task's head: limb path vs the int64 loop."""
    bad = n = 0
    for t in g.config.tasks:
        feats = g.features(x, t.name)
        fast = g._head(feats, t.name)
        with monkeypatch.context() as m:
            m.setattr(golden, "int_matmul", _loop_matmul)
            slow = g._head(feats, t.name)
        bad, n = bad + int((fast != slow).sum()), n + slow.size
    return bad, n


@pytest.mark.parametrize("hw_name", sorted(HW_PRESETS))
@pytest.mark.parametrize("decoder", ["pup", "pup-lite"])
def test_demo_heads_equal_todays_golden_heads(decoder: str, hw_name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    g, x = _demo(decoder, hw_name)
    bad, n = _head_mismatches(g, x, monkeypatch)
    assert n > 0 and bad == 0, f"{bad} of {n} head codes differ ({decoder}, {hw_name})"


def test_the_head_check_catches_a_float32_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo head's sums fit float64 in one limb, so the shortcut that fails is float32 (24 bits)
    g, x = _demo("pup", "w16a32")
    monkeypatch.setattr(golden, "int_matmul", lambda a, b: np.rint(
        a.astype(np.float32) @ np.asarray(b).astype(np.float32)).astype(np.int64))
    assert _head_mismatches(g, x, monkeypatch)[0] > 0


# ---- the run's report: per task mismatches, heads and the latency split -------------------------

def _run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    from mtl_moe.cli import main

    code = main(["run", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_run_json_reports_per_task_mismatches_heads_and_the_split(demo_export, capsys) -> None:
    code, r = _run_json([str(demo_export), "--backend", "sim", "--images", "2"], capsys)
    from mtl_moe.hls_export import read_export

    _, cfg, _ = read_export(demo_export)
    assert code == 0 and r["mismatches"] == 0 and r["heads"] == "host" and r["backend"] == "sim"
    assert set(r["tasks"]) == {t.name for t in cfg.tasks}
    for t in cfg.tasks:
        v = r["tasks"][t.name]
        assert v["heads"] == "host" and v["mismatches"] == 0 and v["feature_mismatches"] == 0, v
        assert v["values"] == 2 * t.out_channels * cfg.img_size[0] * cfg.img_size[1]
        assert v["feature_values"] == 2 * cfg.n_embd * cfg.grid[0] * cfg.grid[1]
        parts = [v[k] for k in ("pre_s", "accelerator_s", "head_s", "post_s")]
        assert all(p > 0 for p in parts) and sum(parts) <= v["end_to_end_s"], v
        assert 0 < v["latency_s"] and v["wall_s"] <= v["accelerator_s"], v


def test_run_refuses_heads_on_the_accelerator_for_a_backbone_only_export(demo_export_of, capsys) -> None:
    from mtl_moe.cli import main

    assert main(["run", str(demo_export_of("int8")), "--heads", "accelerator"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "computes the backbone only" in err, err
    from mtl_moe.deploy.accelerator import Accelerator

    with pytest.raises(ValueError, match="computes the backbone only"):
        Accelerator(demo_export_of("int8"), backend="sim", heads="accelerator")


def test_the_per_task_check_catches_another_tasks_head(demo_export_of) -> None:
    from mtl_moe.deploy.accelerator import Accelerator
    from mtl_moe.deploy.check import run_and_check

    acc = Accelerator(demo_export_of("int8"), backend="sim")
    real = acc.head
    acc.head = lambda f, task: real(f, "depth")  # every task gets depth's head
    r = run_and_check(acc, 1, ["depth", "edges", "normals"])
    depth, edges, normals = (r["tasks"][k] for k in ("depth", "edges", "normals"))
    assert depth["mismatches"] == 0 and edges["feature_mismatches"] == 0
    assert edges["mismatches"] > 0, edges  # same shape (one channel), other weights
    assert normals["mismatches"] == normals["values"], normals  # 1 channel where 3 are due: all count


class _AsyncSim:
    """The C-sim device behind awaited register methods, as the cocotb backend offers them."""

    def __init__(self, dev: CSimDevice) -> None:
        self.dev, self.name = dev, "async-sim"

    def alloc(self, nbytes: int):  # noqa: ANN201
        return self.dev.alloc(nbytes)

    async def read(self, offset: int) -> int:
        return self.dev.read(offset)

    async def write(self, offset: int, value: int) -> None:
        self.dev.write(offset, value)

    async def now(self) -> float:
        return self.dev.now()

    async def sleep(self, seconds: float) -> None:
        self.dev.sleep(seconds)

    async def wait_irq(self, timeout: float) -> bool:
        return self.dev.wait_irq(timeout)


def test_infer_async_reports_the_same_prediction_and_split(demo_export_of) -> None:
    import asyncio

    from mtl_moe.deploy.accelerator import Accelerator

    ex = demo_export_of("int8")
    sync = Accelerator(ex, backend="sim")
    img = csim.test_images(sync.config, 1, 5)[0]
    want = sync.infer(img, 1)
    acc = Accelerator(ex, backend=_AsyncSim(CSimDevice(ex)))
    got = asyncio.run(acc.infer_async(img, 1))
    t = acc.last_timing
    assert np.array_equal(got, want) and t["backend"] == "async-sim" and t["heads"] == "host"
    assert t["pre_s"] + t["accelerator_s"] + t["head_s"] + t["post_s"] <= t["end_to_end_s"]
    assert t["start_to_done_s"] > 0 and acc.last_wall_s <= t["accelerator_s"]

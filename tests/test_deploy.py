"""Deployment: register map, ap_ctrl_hs protocol, the C-sim device, the PYNQ driver, manifests,
the bitstream recipe. The RTL side of the same driver is hw_tests/test_accelerator.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from mtl_moe.config import get_preset
from mtl_moe.deploy import protocol as proto
from mtl_moe.deploy import regmap as rm
from mtl_moe.deploy.accelerator import Accelerator
from mtl_moe.deploy.backends import CSimDevice
from mtl_moe.deploy.check import run_and_check
from mtl_moe.deploy.manifest import ManifestMismatch, check_overlay, write_manifest
from mtl_moe.hls_export import weight1_bundle
from mtl_moe.hw import get_hw

REPO = Path(__file__).resolve().parents[1]


# ---- register map --------------------------------------------------------------------------------

def test_register_map_follows_vitis_layout():
    # Vitis HLS 2023.1 x<top>_hw.h of a top `(int size, int* xval, int* xcols)` (published driver header,
    # CTSRD-CHERI/cheri-hls examples/spmv_crs): size 0x10, xval 0x18/0x1c, xcols 0x24/0x28
    r = rm.register_map((rm.Arg("size", "u32"), rm.Arg("xval", "ptr"), rm.Arg("xcols", "ptr")))
    assert r["args"] == {"size": 0x10, "xval": 0x18, "xcols": 0x24}
    ours = rm.register_map()["args"]
    # the same rules on ours: the second weight pointer moves every later argument by 12 bytes
    assert ours == {"weights": 0x10, "weights1": 0x1C, "images": 0x28, "features": 0x34, "task": 0x40,
                    "n_images": 0x48}
    assert rm.register_map()["addr_width"] == 7  # last register 0x4C needs 7 address bits


def test_top_function_signature_is_the_register_map(demo_export):
    top = (demo_export / "top.cpp").read_text()
    sig = re.search(r'extern "C" void mtl_moe_top\(([^)]*)\)', top).group(1)
    names = [re.split(r"[\s*]+", a.strip())[-1] for a in sig.split(",")]
    kinds = ["ptr" if "*" in a else "u32" for a in sig.split(",")]
    assert [(a.name, a.kind) for a in rm.TOP_ARGS] == list(zip(names, kinds, strict=True))
    ports = json.loads((demo_export / "export.json").read_text())["kernel_params"]["weight_ports"]
    for a in rm.TOP_ARGS:
        bundle = weight1_bundle(ports) if a.name == "weights1" else a.bundle  # gmem_w1 only with 2 ports
        pragma = f"port = {a.name}" + (f" bundle = {bundle}" if a.kind == "ptr" else "")
        assert pragma in top, pragma


def test_buffer_sizes_follow_element_storage():
    cfg, hw = get_preset("demo"), get_hw("int8")
    s = rm.buffer_sizes(cfg, hw, 100)
    assert s["image"] == 3 * 32 * 32 * 1 and s["features"] == 64 * 64 * 1
    assert rm.buffer_sizes(cfg, get_hw("w16a32"), 100)["image"] == 3 * 32 * 32 * 4
    with pytest.raises(ValueError, match="outside 1..64"):
        rm.storage_bytes(65)


# ---- the protocol against a fake MMIO that records every access ------------------------------------

class FakeMMIO:
    """ap_ctrl_hs as the Vitis header describes it, busy for `busy_reads` control reads after start."""

    def __init__(self, busy_reads: int = 3, never_done: bool = False) -> None:
        self.log: list[tuple] = []
        self.busy, self.started, self.left, self.never = False, 0, busy_reads, never_done
        self.busy_reads, self.isr, self.t = busy_reads, 0, 0.0

    def read(self, off):
        v = 0
        if off == rm.CTRL:
            if self.busy and not self.never:
                self.left -= 1
                if self.left < 0:
                    self.busy, self.isr = False, 1
                    v = rm.AP_DONE | rm.AP_READY
            v |= rm.AP_IDLE if not self.busy else 0
        elif off == rm.ISR:
            v = self.isr
        self.log.append(("R", off, v))
        return v

    def write(self, off, value):
        self.log.append(("W", off, value))
        if off == rm.CTRL and value & rm.AP_START and not self.busy:
            self.busy, self.left, self.started = True, self.busy_reads, self.started + 1
        if off == rm.ISR:
            self.isr ^= value

    def now(self):
        return self.t

    def sleep(self, s):
        self.t += s

    def wait_irq(self, timeout):
        return True


ARGS = {"weights": 0x1_2345_6000, "weights1": 0x1_2345_6000, "images": 0x2000, "features": 0x3000, "task": 2,
        "n_images": 1}


def test_start_programs_arguments_then_raises_ap_start_last():
    io, regs = FakeMMIO(), rm.register_map()
    proto.drive(proto.start(regs, ARGS, irq=False), io)
    assert io.log[0] == ("R", rm.CTRL, rm.AP_IDLE)  # checks idle first
    writes = [(o, v) for k, o, v in io.log if k == "W"]
    assert writes[-1] == (rm.CTRL, rm.AP_START) and io.started == 1
    a = regs["args"]
    assert (a["weights"], 0x2345_6000) in writes and (a["weights"] + 4, 0x1) in writes  # 64-bit lo, hi
    assert (a["task"], 2) in writes and (a["n_images"], 1) in writes
    assert writes.index((rm.GIE, 0)) < len(writes) - 1


def test_wait_polls_until_done_and_reads_done_once():
    io, regs = FakeMMIO(busy_reads=4), rm.register_map()
    proto.drive(proto.start(regs, ARGS, irq=False), io)
    n = len(io.log)
    elapsed = proto.drive(proto.wait_done(regs, timeout=1.0, irq=False, poll=1e-3), io)
    polls = [e for e in io.log[n:] if e[:2] == ("R", rm.CTRL)]
    assert len(polls) == 5 and polls[-1][2] & rm.AP_DONE and not any(p[2] & rm.AP_DONE for p in polls[:-1])
    assert elapsed == pytest.approx(4e-3)


def test_interrupt_path_acknowledges_the_isr():
    io, regs = FakeMMIO(busy_reads=0), rm.register_map()
    proto.drive(proto.start(regs, ARGS, irq=True), io)
    io.read(rm.CTRL)  # the run completes
    proto.drive(proto.wait_done(regs, timeout=1.0, irq=True, poll=1e-3), io)
    assert ("W", rm.GIE, 1) in io.log and ("W", rm.IER, rm.IRQ_DONE) in io.log
    assert ("W", rm.ISR, rm.IRQ_DONE) in io.log and io.isr == 0


def test_start_while_busy_is_refused_without_touching_registers():
    io, regs = FakeMMIO(), rm.register_map()
    proto.drive(proto.start(regs, ARGS, irq=False), io)
    n = len(io.log)
    with pytest.raises(proto.AcceleratorBusy, match="busy.*ap_idle=0"):
        proto.drive(proto.start(regs, ARGS, irq=False), io)
    assert [e[0] for e in io.log[n:]] == ["R"] and io.started == 1


def test_done_that_never_comes_times_out_with_the_state():
    io, regs = FakeMMIO(never_done=True), rm.register_map()
    proto.drive(proto.start(regs, ARGS, irq=False), io)
    with pytest.raises(proto.AcceleratorTimeout, match=r"within 0.01 s .*ap_start=0.*ap_idle=0"):
        proto.drive(proto.wait_done(regs, timeout=0.01, irq=False, poll=1e-3), io)


def test_bad_arguments_are_refused():
    regs = rm.register_map()
    with pytest.raises(ValueError, match="n_images"):
        proto.drive(proto.start(regs, {**ARGS, "n_images": 1 << 32}, False), FakeMMIO())
    with pytest.raises(ValueError, match=r"not given"):
        proto.drive(proto.start(regs, {"task": 0}, False), FakeMMIO())


# ---- the C-sim device: the same driver end to end ------------------------------------------------

def test_sim_backend_every_task_bit_exact_with_golden(demo_export):
    acc = Accelerator(demo_export, backend="sim", max_images=2)
    r = run_and_check(acc, n_images=2)
    assert set(r["tasks"]) == {t.name for t in acc.config.tasks}
    assert r["mismatches"] == 0, r
    assert isinstance(acc.backend, CSimDevice) and acc.backend.runs == len(acc.config.tasks)


def test_infer_equals_the_golden_model_in_floats(demo_export):
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.golden import GoldenModel

    acc = Accelerator(demo_export, backend="sim", irq=True)
    img = test_images(acc.config, 1, seed=3)[0]
    y = acc.infer(img, "depth")
    want = acc.hw.act.to_float(GoldenModel(acc.config, acc.hw, acc.params)(input_codes(img[None], acc.hw),
                                                                            "depth"))[0]
    assert y.shape == want.shape and np.array_equal(y, want)


def test_sim_device_ignores_start_while_busy(demo_export):
    dev = CSimDevice(demo_export)
    gate = threading.Event()
    real = dev._top
    dev._top = lambda *a: (gate.wait(5), real(*a))
    acc = Accelerator(demo_export, backend=dev)
    x = np.zeros((1, 3, 32, 32), np.int64)
    run = acc.program(x, 0)
    op = next(run)
    while not (isinstance(op, proto.Write) and op.offset == rm.CTRL):
        op = run.send(proto._apply(op, dev))
    proto._apply(op, dev)  # ap_start: now busy until the gate opens
    with pytest.raises(proto.AcceleratorBusy):
        proto.drive(proto.start(acc.regs, {k: 0 for k in acc.regs["args"]}, False), dev)
    dev.write(rm.CTRL, rm.AP_START)  # a raw second start must not queue a second run
    gate.set()
    op = run.send(None)
    try:
        while True:
            op = run.send(proto._apply(op, dev))
    except StopIteration:
        pass
    assert dev.runs == 1 and dev.read(rm.CTRL) & rm.AP_IDLE


def test_sim_device_with_unreachable_buffer_hangs_and_the_driver_times_out(demo_export):
    from mtl_moe.deploy.backends import Buffer

    acc = Accelerator(demo_export, backend="sim", timeout=0.2)
    x = np.zeros((1, 3, 32, 32), np.int64)
    acc._check_window = lambda *a: None  # as on a platform that publishes no window (PYNQ)
    acc.features_buf = Buffer(acc.backend.memory_window[1], acc.features_buf.nbytes, acc.features_buf._view)
    with pytest.raises(proto.AcceleratorTimeout, match="no done within 0.2 s: the simulated masters read "
                       "outside memory"):
        acc.features(x, 0)
    assert "outside memory" in acc.backend.bus_error


def test_a_slow_simulation_times_out_as_still_running_not_as_a_hang(demo_export):
    """The sim backend's timeout says the C++ is still computing and how far it got; the board's
    'done never came' text (control bits, bus causes) is for a real hang only."""
    acc = Accelerator(demo_export, backend="sim", timeout=1e-4, max_images=16)
    x = np.zeros((16, 3, 32, 32), np.int64)
    with pytest.raises(proto.AcceleratorTimeout, match=r"still running on this CPU, not hung: \d+ of 16 "
                       r"image\(s\) done") as e:
        acc.features(x, 0)
    assert "buffer address" not in str(e.value)
    while not acc.backend.read(rm.CTRL) & rm.AP_IDLE:  # let the run finish: it is real work
        time.sleep(0.01)
    assert acc.backend.runs == 1


def test_infer_refuses_an_unnormalised_or_integer_image(demo_export):
    acc = Accelerator(demo_export, backend="sim")
    photo = np.full((3, 32, 32), 200, np.uint8)
    with pytest.raises(ValueError, match="got uint8 values .* Accelerator.normalise"):
        acc.infer(photo, 0)
    with pytest.raises(ValueError, match="outside what Accelerator.normalise gives"):
        acc.infer(photo.astype(np.float32), 0)  # 0..255 floats
    images, _ = acc.samples()
    assert acc.infer(images[0], 0).shape[-2:] == (32, 32)  # the export's own samples pass


def test_accelerator_refuses_bad_input(demo_export):
    acc = Accelerator(demo_export, backend="sim")
    with pytest.raises(ValueError, match=r"shape \(B, 3, 32, 32\)"):
        acc.features(np.zeros((1, 3, 16, 16), np.int64), 0)
    with pytest.raises(ValueError, match="unknown task"):
        acc.features(np.zeros((1, 3, 32, 32), np.int64), "sky")
    with pytest.raises(ValueError, match="1..1"):
        acc.features(np.zeros((2, 3, 32, 32), np.int64), 0)
    with pytest.raises(ValueError, match="must lie in"):
        acc.features(np.full((1, 3, 32, 32), 1 << 40, np.int64), 0)
    with pytest.raises(ValueError, match="outside the accelerator's memory"):
        acc.features_buf.address = acc.backend.memory_window[1]
        acc.features(np.zeros((1, 3, 32, 32), np.int64), 0)


# ---- manifest ------------------------------------------------------------------------------------

def _overlay(tmp_path: Path) -> Path:
    """A .bit/.hwh pair of arbitrary bytes: the manifest logic only hashes them (test-only files)."""
    bit = tmp_path / "mtl_moe.bit"
    bit.write_bytes(b"\x00bit" * 64)
    bit.with_suffix(".hwh").write_text("<hwh/>")
    return bit


def test_manifest_accepts_its_export_and_names_the_field_that_differs(demo_export, tmp_path):
    bit = _overlay(tmp_path)
    man = json.loads(write_manifest(demo_export, bit, "3.1", "2024.1").read_text())
    assert man["tools"] == {"pynq": "3.1", "vivado": "2024.1", "vitis_hls": "2024.1"}
    assert check_overlay(bit, demo_export)["weights_sha256"] == man["weights_sha256"]
    for field, value in (("weights_sha256", "0" * 64), ("config_hash", "abc"), ("ip_vlnv", "x:y:z:1.0")):
        bad = {**man, field: value}
        bit.with_suffix(".json").write_text(json.dumps(bad))
        with pytest.raises(ManifestMismatch, match=f"field '{field}'"):
            check_overlay(bit, demo_export)
    bit.with_suffix(".json").write_text(json.dumps(man))
    bit.write_bytes(b"other bitstream")
    with pytest.raises(ManifestMismatch, match="bit_sha256"):
        check_overlay(bit, demo_export)


def test_manifest_refuses_wrong_tools_and_missing_files(demo_export, tmp_path):
    bit = _overlay(tmp_path)
    with pytest.raises(ValueError, match="PYNQ 3.1 images need Vivado/Vitis HLS 2024.1"):
        write_manifest(demo_export, bit, "3.1", "2025.2")
    with pytest.raises(ValueError, match="supported"):
        write_manifest(demo_export, bit, "2.7")
    bit.with_suffix(".hwh").unlink()
    with pytest.raises(FileNotFoundError, match="hwh"):
        write_manifest(demo_export, bit, "4.0")
    with pytest.raises(FileNotFoundError, match="manifest"):
        Accelerator(demo_export, backend="sim", overlay=bit)


# ---- the PYNQ driver, on a stand-in for the pynq package -----------------------------------------

def _fake_pynq(device: CSimDevice) -> types.ModuleType:
    """Just what PYNQ offers the driver: DefaultIP (subclasses registered by bindto, as PYNQ's
    metaclass does), Overlay (ip_dict from the .hwh; attribute per IP), allocate (contiguous
    buffers with a physical address); backed by the C-sim device's registers and memory."""
    m = types.ModuleType("pynq")
    registry: dict[str, type] = {}

    class DefaultIP:
        def __init_subclass__(cls, **kw):
            super().__init_subclass__(**kw)
            for v in getattr(cls, "bindto", []):
                registry[v] = cls

        def __init__(self, description):
            self.description = description

        def read(self, off):
            return device.read(off)

        def write(self, off, v):
            device.write(off, v)

    class Buf(np.ndarray):
        def sync_to_device(self):
            pass

        def sync_from_device(self):
            pass

        def freebuffer(self):
            pass

    def allocate(shape, dtype):
        b = device.alloc(int(np.prod(shape)))
        arr = b._view.view(Buf)
        arr.physical_address = b.address
        return arr

    class Overlay:
        def __init__(self, bitfile):
            vlnv = "mtl-moe.org:hls:mtl_moe:1.0"
            self.ip_dict = {"mtl_moe_0": {"type": vlnv}}
            self.mtl_moe_0 = registry[vlnv](self.ip_dict["mtl_moe_0"])

    m.DefaultIP, m.Overlay, m.allocate = DefaultIP, Overlay, allocate
    return m


def test_pynq_driver_binds_by_vlnv_and_runs_bit_exact(demo_export, tmp_path, monkeypatch):
    device = CSimDevice(demo_export)
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(device))
    monkeypatch.delitem(sys.modules, "mtl_moe.deploy.pynq_driver", raising=False)
    bit = _overlay(tmp_path)
    write_manifest(demo_export, bit, "4.0")
    acc = Accelerator(demo_export, backend="pynq", overlay=bit)
    from mtl_moe.deploy.pynq_driver import MoEAccel

    assert isinstance(acc.backend.ip, MoEAccel) and MoEAccel.bindto == [acc.meta["ip_vlnv"]]
    r = run_and_check(acc, 1, ["semseg", "depth"])
    assert r["backend"] == "pynq" and r["mismatches"] == 0 and device.runs == 2
    for v in r["tasks"].values():  # the run's split on the board's driver path as well
        assert v["heads"] == "host" and 0 < v["accelerator_s"] < v["end_to_end_s"], v
    assert acc.read_power_w() is None  # no rails on the stand-in


# ---- bitstream recipe ----------------------------------------------------------------------------

def test_bitstream_recipe_runs_hls_vivado_and_manifest(demo_export):
    r = subprocess.run(["make", "-n", "-C", str(REPO / "bitstreams"), f"EXPORT={demo_export}", "PYNQ=4.0",
                        "HAVE=2025.2", "overlay"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    steps = [out.index(s) for s in ("vitis_hls -f run_hls.tcl", "vivado -mode batch -source build_vivado.tcl",
                                    "-m mtl_moe manifest")]
    assert steps == sorted(steps) and "--pynq 4.0" in out


def test_bitstream_recipe_without_vivado_says_what_is_missing(demo_export, tmp_path):
    import shutil

    if shutil.which("vitis_hls"):
        pytest.skip("Vitis HLS is installed here; the missing-tool message cannot be shown")
    r = subprocess.run(["make", "-C", str(REPO / "bitstreams"), f"EXPORT={demo_export}", "PYNQ=3.1",
                        "overlay"], capture_output=True, text=True)
    assert r.returncode != 0 and "vitis_hls not found on PATH" in r.stdout + r.stderr
    assert "2024.1" in r.stdout + r.stderr


@pytest.mark.vivado
def test_bitstream_builds_with_vivado(demo_export):
    import shutil

    if not (shutil.which("vitis_hls") and shutil.which("vivado")):
        pytest.skip("needs vitis_hls and vivado on PATH")
    r = subprocess.run(["make", "-C", str(REPO / "bitstreams"), f"EXPORT={demo_export}", "overlay"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check_overlay(demo_export / "bitstream" / "mtl_moe.bit", demo_export)


@pytest.mark.board
def test_on_the_board_every_task_bit_exact(demo_export):
    pytest.importorskip("pynq", reason="needs a ZCU104 running PYNQ")
    bit = demo_export / "bitstream" / "mtl_moe.bit"
    if not bit.is_file():
        pytest.skip(f"no overlay at {bit}: build it with make -C bitstreams")
    r = run_and_check(Accelerator(demo_export, backend="pynq", overlay=bit), 1)
    assert r["mismatches"] == 0, r


# ---- host input quantization -----------------------------------------------------------------------

@pytest.mark.parametrize("hw_name", ["int8", "w16a32"])
def test_host_input_quantization_is_the_qat_graphs(hw_name):
    import torch

    from mtl_moe.csim import input_codes
    from mtl_moe.quant import fq

    hw = get_hw(hw_name)
    t = hw.input
    k = np.arange(-40, 40)
    x = np.concatenate([(k + 0.5) * t.lsb, (k + 0.25) * t.lsb, k * t.lsb,  # ties, off-grid, on-grid
                        np.random.default_rng(0).normal(0, 1.5, 2000)])
    x = x[(x >= t.min_value) & (x <= t.max_value)]
    graph = fq(torch.from_numpy(x), t, "input").numpy() * 2.0**t.frac_bits
    assert np.array_equal(input_codes(x, hw), graph.astype(np.int64))
    if t.rounding == "RND":  # a tie rounds up, not down (the old host path floored)
        assert input_codes(np.array([0.5 * t.lsb]), hw)[0] == 1


def test_host_input_overflow_saturates_or_is_reported_as_the_type_says():
    from mtl_moe.csim import input_codes
    from mtl_moe.fixed import FixedOverflowError

    big = np.array([1e4])
    assert input_codes(big, get_hw("int8"))[0] == get_hw("int8").input.max_code  # SAT type
    with pytest.raises(FixedOverflowError, match="input image"):
        input_codes(big, get_hw("w16a32"))  # WRAP type: an error, not a silent wrap


def test_export_ships_samples_and_the_host_normalisation(demo_export):
    from mtl_moe.csim import test_images
    from mtl_moe.data import IMAGE_MEAN, IMAGE_STD, build_dataset

    acc = Accelerator(demo_export, backend="sim")
    images, targets = acc.samples()
    assert np.array_equal(images, test_images(acc.config, 4, 0))
    ds = build_dataset(acc.config, "val", 4, seed=0)
    assert np.array_equal(targets["depth"][2], ds[2]["depth"].numpy())
    rgb = np.random.default_rng(0).random((32, 32, 3))
    want = (rgb.transpose(2, 0, 1) - np.array(IMAGE_MEAN)[:, None, None]) / np.array(IMAGE_STD)[:, None, None]
    assert np.allclose(acc.normalise(rgb), want)
    with pytest.raises(ValueError, match=r"RGB image of shape \(32, 32, 3\)"):
        acc.normalise(rgb[:16])


def test_a_damaged_weight_blob_is_refused(demo_export, tmp_path):
    import shutil

    ex = tmp_path / "export"
    shutil.copytree(demo_export, ex, ignore=shutil.ignore_patterns("build"))
    blob = bytearray((ex / "weights.bin").read_bytes())
    blob[100] ^= 1  # one bit
    (ex / "weights.bin").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="SHA-256"):
        Accelerator(ex, backend="sim")

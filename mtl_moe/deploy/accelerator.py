"""Multi-task inference on the accelerator: load the weights once, then ``infer(image, task)``.

:class:`Accelerator` is the host side of an exported design on any backend (the board through
PYNQ, the C-sim device, the Verilator simulation): it allocates the DDR buffers the register map
sizes (``regmap.json`` of the export), writes the weights once, and per call writes the image
codes, programs the registers (:mod:`mtl_moe.deploy.protocol`), waits for done, reads the backbone
features and runs the task's head on the host in the golden model's integer arithmetic (the heads
are host-side by design, see ``mtl_moe.hls_export``). Switching task is one register write.

End-to-end latency is what :meth:`Accelerator.infer` measures, image in → prediction out, split in
``last_timing`` into the four parts a user waits for: host pre-processing (float image → input
codes), accelerator (image written to DDR, registers, start → done, features read back), the head
on the host, and post-processing (output codes → floats). On the simulated backend the accelerator
part is the C++ model on this CPU, not a hardware latency.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe.csim import check_input_codes
from mtl_moe.deploy import protocol as proto
from mtl_moe.deploy.backends import Buffer, CSimDevice
from mtl_moe.deploy.regmap import output_bytes
from mtl_moe.hls_export import read_export

HEADS = ("host", "accelerator", "auto")  # where the task heads run; auto: where the export puts them


def check_heads(heads: str, buffers: dict[str, int] | None = None) -> str:
    """The ``heads`` choice, refused in one line when unknown, or "accelerator" for an export whose
    top computes the backbone only (exported without ``KernelParams.heads_on_accel``). With the
    export's ``buffers``, "auto" becomes what the export built: "accelerator" when its top writes
    predictions, else "host"."""
    if heads not in HEADS:
        raise ValueError(f"unknown heads {heads!r}; use one of {HEADS}")
    if heads == "auto" and buffers is not None:
        return "accelerator" if "prediction" in buffers else "host"
    if heads == "accelerator" and buffers is not None and "prediction" not in buffers:
        raise ValueError("heads 'accelerator': this export's top computes the backbone only; re-export with "
                         "the heads in its top (mtl-moe export --heads accelerator) or use heads 'host'")
    return heads


class Accelerator:
    """An exported design on a backend. ``backend``: "sim", "pynq", "auto" (pynq when importable
    and an overlay is given, else sim) or an object with the backend methods. ``heads``: where the
    task heads run: "host" (golden's heads on the host, from the features the top writes),
    "accelerator" (an export with the heads in its top: its output buffer holds the predictions) or
    "auto" (whichever the export was built for; what a notebook that takes any export wants)."""

    def __init__(self, export_dir: str | Path, backend: str | Any = "auto",
                 overlay: str | Path | None = None, max_images: int = 1, timeout: float = 30.0,
                 irq: bool = False, poll: float = 1e-4, heads: str = "auto") -> None:
        self.heads = check_heads(heads)  # against the export's buffers below
        self.dir = Path(export_dir)
        if not (self.dir / "regmap.json").is_file():
            raise FileNotFoundError(f"{self.dir / 'regmap.json'} is missing: export the model with "
                                    "`mtl-moe export` (not an export folder, or one older than regmap.json)")
        self.meta, self.config, self.hw = read_export(self.dir)
        self.regs = json.loads((self.dir / "regmap.json").read_text())
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self.max_images, self.timeout, self.irq, self.poll = max_images, timeout, irq, poll
        if overlay is not None:
            from mtl_moe.deploy.manifest import check_overlay

            check_overlay(overlay, self.dir)
        self.backend = make_backend(backend, self.dir, overlay)
        sizes = self.regs["buffers"]
        self.heads = heads = check_heads(heads, sizes)
        self.on_chip_heads = "prediction" in sizes  # the top writes predictions, not features
        if self.on_chip_heads and heads == "host":
            raise ValueError("this export runs the heads on the accelerator (its output buffer holds "
                             "predictions, not features): use heads 'accelerator'")
        weights = (self.dir / "weights.bin").read_bytes()
        if len(weights) != sizes["weights"]:
            raise ValueError(f"weights.bin has {len(weights)} bytes, regmap.json says {sizes['weights']}")
        digest = hashlib.sha256(weights).hexdigest()
        if digest != self.meta["weights_sha256"]:  # a damaged or swapped blob computes garbage silently
            raise ValueError(f"{self.dir / 'weights.bin'} has SHA-256 {digest[:16]}…, export.json says "
                             f"{self.meta['weights_sha256'][:16]}…: re-export, or restore the file")
        # program.bin rides in the weights buffer at the offset the export records: the RTL top
        # (hw_tests/rtl/accel_top.sv) reads it there; the HLS top ignores the bytes past weights.bin
        off = self.meta["program"].get("weights_offset")
        program = (self.dir / "program.bin").read_bytes() if off is not None else b""
        self.weights = self.backend.alloc(len(weights) if off is None else off + len(program))
        self.weights.write(weights)  # once: every task shares them
        if off is not None:
            self.weights.write(program, off)
        self.images = self.backend.alloc(max_images * sizes["image"])
        self.features_buf = self.backend.alloc(output_bytes(sizes, max_images)[0])
        with np.load(self.dir / "params.npz") as z:
            self.params = {k: z[k] for k in z.files}
        self.last_latency_s: float | None = None  # backend clock, start to done
        self.last_wall_s: float | None = None  # host clock, image written → features read
        self.last_timing: dict[str, Any] | None = None  # infer's split, see the module docstring
        self.last_features: np.ndarray | None = None  # infer's backbone features (codes)
        self.last_output_codes: np.ndarray | None = None  # infer's head output (codes)

    def task_index(self, task: str | int) -> int:
        return self.config.task_index(task)  # raises with the known task names

    def _check_window(self, buf: Buffer, nbytes: int, what: str) -> None:
        win = getattr(self.backend, "memory_window", None)
        if win is not None and not (win[0] <= buf.address and buf.address + nbytes <= win[1]):
            raise ValueError(f"{what} buffer [{buf.address:#x}, {buf.address + nbytes:#x}) lies outside the "
                             f"accelerator's memory [{win[0]:#x}, {win[1]:#x})")

    def program(self, codes: np.ndarray, task: str | int) -> proto.Program:
        """The register program of one run: (B, C, H, W) input codes → (B, D, gh, gw) features."""
        c, sizes = self.config, self.regs["buffers"]
        x = np.asarray(codes)
        if x.ndim != 4 or x.shape[1:] != (c.in_chans, *c.img_size):
            raise ValueError(f"expected image codes of shape (B, {c.in_chans}, {c.img_size[0]}, "
                             f"{c.img_size[1]}), got {x.shape}")
        n = x.shape[0]
        if not 1 <= n <= self.max_images:
            raise ValueError(f"{n} images per run; this Accelerator has buffers for 1..{self.max_images}")
        t = self.task_index(task)
        check_input_codes(x, self.hw)
        self.images.write(x.astype(f"<i{sizes['image_elem']}").tobytes())
        for buf, nb, what in ((self.weights, sizes["weights"], "weights"), (self.images, n * sizes["image"],
                              "images"), (self.features_buf, output_bytes(sizes, n)[0], "features")):
            self._check_window(buf, nb, what)
        # both weight pointers at the one weight buffer: with two weight ports the kernels read plane 0
        # of each matrix through gmem_w and plane 1 through gmem_w1 (mtl_moe/layout.py), of the same blob
        args = {"weights": self.weights.address, "weights1": self.weights.address,
                "images": self.images.address, "features": self.features_buf.address,
                "task": t, "n_images": n}
        yield from proto.start(self.regs, args, self.irq)
        self.last_latency_s = yield from proto.wait_done(self.regs, self.timeout, self.irq, self.poll)
        yield from proto.check_status(self.regs)  # the RTL top's fault bits (0 on the HLS IP)
        if self.on_chip_heads:  # image b's prediction (out, H, W) at b * prediction bytes
            per = c.tasks[t].out_channels * c.img_size[0] * c.img_size[1]
            raw = self.features_buf.read(n * sizes["prediction"])
            codes_b = np.frombuffer(raw, f"<i{sizes['features_elem']}").reshape(n, -1)[:, :per]
            return codes_b.astype(np.int64).reshape(n, c.tasks[t].out_channels, *c.img_size)
        raw = self.features_buf.read(n * sizes["features"])
        feats = np.frombuffer(raw, f"<i{sizes['features_elem']}").astype(np.int64)
        return feats.reshape(n, c.n_embd, *c.grid)

    def features(self, codes: np.ndarray, task: str | int) -> np.ndarray:
        """Backbone features computed by the accelerator (synchronous backends)."""
        t0 = time.perf_counter()
        try:
            out = proto.drive(self.program(codes, task), self.backend)
        except proto.AcceleratorTimeout as e:
            why = getattr(self.backend, "timeout_reason", lambda: None)()
            if why is None:  # the board: done never came; the message names the control bits
                raise
            raise proto.AcceleratorTimeout(f"no done within {self.timeout:g} s: {why}") from e
        self.last_wall_s = time.perf_counter() - t0
        return out

    def head(self, features: np.ndarray, task: str | int) -> np.ndarray:
        """The task's head on the host (golden integer arithmetic) → output codes."""
        from mtl_moe.golden import GoldenModel

        name = self.config.tasks[self.task_index(task)].name
        return GoldenModel(self.config, self.hw, self.params)._head(features, name)

    def infer(self, image: np.ndarray, task: str | int) -> np.ndarray:
        """Float image(s) (C, H, W) or (B, C, H, W), normalised as the training data → the task's
        prediction as floats: host quantization, accelerator backbone, host head, floats out.
        ``last_timing`` holds the split of this call (seconds)."""
        t0 = time.perf_counter()
        codes, single = self._pre(image)
        t1 = time.perf_counter()
        feats = self.features(codes, task)
        return self._finish(feats, task, single, t0, t1)

    async def infer_async(self, image: np.ndarray, task: str | int) -> np.ndarray:
        """:meth:`infer` on an async backend (the Verilator/cocotb accelerator): the same register
        program through ``protocol.drive_async``, the same phases and ``last_timing``."""
        t0 = time.perf_counter()
        codes, single = self._pre(image)
        t1 = time.perf_counter()
        feats = await proto.drive_async(self.program(codes, task), self.backend)
        self.last_wall_s = time.perf_counter() - t1
        return self._finish(feats, task, single, t0, t1)

    def _pre(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """Host pre-processing: check a normalised float image, quantize it to input codes."""
        from mtl_moe.csim import input_codes

        raw = np.asarray(image)
        if not np.issubdtype(raw.dtype, np.floating):
            raise ValueError(f"infer takes a normalised float image, got {raw.dtype} values (an 8-bit "
                             "photo?): pass Accelerator.normalise(rgb / 255.0) of an (H, W, 3) image")
        x = raw.astype(np.float64)
        lo, hi = self.input_range()
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"image values [{x.min():.3g}, {x.max():.3g}] are outside what "
                             f"Accelerator.normalise gives for RGB in [0, 1] (about [{lo:.2f}, {hi:.2f}]): "
                             "normalise the image with the export's mean/std first")
        single = x.ndim == 3
        return input_codes(x[None] if single else x, self.hw), single

    def _finish(self, feats: np.ndarray, task: str | int, single: bool, t0: float, t1: float) -> np.ndarray:
        """Host head and post-processing after the accelerator's part, and the call's timing."""
        t2 = time.perf_counter()
        out = feats if self.on_chip_heads else self.head(feats, task)
        t3 = time.perf_counter()
        y = self.hw.act.to_float(out)
        y = y[0] if single else y
        t4 = time.perf_counter()
        # heads on the accelerator: the features stay in its scratch, not read back
        self.last_features, self.last_output_codes = (None if self.on_chip_heads else feats), out
        self.last_timing = {"backend": getattr(self.backend, "name", type(self.backend).__name__),
                            "heads": self.heads, "images": int(feats.shape[0]), "pre_s": t1 - t0,
                            "accelerator_s": t2 - t1, "start_to_done_s": self.last_latency_s,
                            "head_s": t3 - t2, "post_s": t4 - t3, "end_to_end_s": t4 - t0}
        return y

    def input_range(self) -> tuple[float, float]:
        """Bounds of a normalised image: RGB in [-0.25, 1.25] (a margin for augmented or rendered
        scenes) through the export's mean/std. Anything beyond was not normalised this way."""
        mean, std = (np.asarray(self.meta[k], np.float64) for k in ("image_mean", "image_std"))
        return float(((-0.25 - mean) / std).min()), float(((1.25 - mean) / std).max())

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        """An RGB image (H, W, 3) with values in [0, 1] → the (3, H, W) float input the model was
        trained on (the export's image_mean / image_std); resizing is the caller's."""
        x = np.asarray(rgb, np.float64)
        if x.ndim != 3 or x.shape[2] != 3 or x.shape[:2] != tuple(self.config.img_size):
            raise ValueError(f"expected an RGB image of shape ({self.config.img_size[0]}, "
                             f"{self.config.img_size[1]}, 3), got {x.shape}")
        mean, std = (np.asarray(self.meta[k], np.float64)[:, None, None] for k in ("image_mean", "image_std"))
        return (x.transpose(2, 0, 1) - mean) / std

    def samples(self) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """The export's sample images (N, C, H, W) and their targets per task (None when the config
        renders no synthetic scenes): samples.npz, written by `mtl-moe export`."""
        path = self.dir / "samples.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: re-export with this version of `mtl-moe export`")
        with np.load(path) as z:
            targets = {t.name: z[f"target_{t.name}"] for t in self.config.tasks if f"target_{t.name}" in z}
            return z["images"], (targets or None)

    def read_power_w(self) -> float | None:
        """Board power from the PMBus rails (PYNQ), None where the backend has no sensors."""
        f = getattr(self.backend, "read_power_w", None)
        return f() if f is not None else None


def make_backend(kind: str | Any, export_dir: Path, overlay: str | Path | None = None) -> Any:
    if not isinstance(kind, str):
        return kind
    if kind == "auto":
        kind = "pynq" if overlay is not None and _pynq_available() else "sim"
    if kind == "sim":
        return CSimDevice(export_dir)
    if kind == "pynq":
        if overlay is None:
            raise ValueError("the pynq backend needs overlay= (the .bit whose .hwh sits beside it)")
        from mtl_moe.deploy.pynq_driver import PynqBackend

        return PynqBackend(overlay)
    raise ValueError(f"unknown backend {kind!r}; use 'auto', 'sim' or 'pynq'")


def _pynq_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pynq") is not None

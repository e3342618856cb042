"""A small deployable export built on the fly, for the notebook when ``make demo`` has not run.

Trains the demo preset for a few hundred steps on the synthetic scenes, quantizes it (a short QAT)
and exports it: a real model through the real pipeline, just trained far less than ``make demo``
trains it, so its predictions are rougher (the notebook says which model it shows).
"""

from __future__ import annotations

from pathlib import Path

from mtl_moe.config import get_preset


def small_export(work_dir: str | Path, hw: str = "w16a32", steps: int = 200, qat_steps: int = 20,
                 progress: bool = False) -> Path:
    """Train → quantize → export into work_dir (reused when already there); returns the export folder."""
    from mtl_moe.hls_export import export
    from mtl_moe.qat import QuantizeArgs, load_quant_model, quantize
    from mtl_moe.train import TrainArgs, train

    w = Path(work_dir)
    out = w / f"export-{hw}"
    if (out / "regmap.json").is_file():
        return out
    train(get_preset("demo"), TrainArgs(epochs=1, n_train=32 * steps, n_val=64, max_steps=steps),
          w / "train", progress=progress)
    quantize(w / "train", QuantizeArgs(hw=hw, n_train=32 * qat_steps, n_val=64, max_steps=qat_steps,
                                       n_check=1), w / f"quant-{hw}", progress=progress)
    export(load_quant_model(w / f"quant-{hw}"), out, force=True)
    return out

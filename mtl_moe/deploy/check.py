"""Every task of an export through the deployment driver, compared with the golden model.

Used by ``mtl-moe run``, the notebook and the tests: the same images, the accelerator's backbone
features and final outputs (host heads) against the golden model's, as counts of mismatching values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtl_moe.csim import input_codes, test_images
from mtl_moe.golden import GoldenModel


def run_and_check(acc: Any, n_images: int = 1, tasks: list[str] | None = None, seed: int = 0,
                  keep_outputs: bool = False, images: np.ndarray | None = None) -> dict[str, Any]:
    """Run every task (or ``tasks``) on ``acc`` (an Accelerator) for ``images`` (float, normalised),
    by default n_images validation scenes rendered with ``seed``."""
    cfg, hw = acc.config, acc.hw
    if images is None:
        images = test_images(cfg, n_images, seed)
    n_images = len(images)
    x = input_codes(images, hw)
    golden = GoldenModel(cfg, hw, acc.params)
    res: dict[str, Any] = {"backend": getattr(acc.backend, "name", type(acc.backend).__name__),
                           "images": n_images, "mismatches": 0, "tasks": {}}
    outputs: dict[str, np.ndarray] = {}
    for name in tasks or [t.name for t in cfg.tasks]:
        f_gold = golden.features(x, name)
        y_gold = golden._head(f_gold, name)
        feats = acc.features(x, name)
        y = acc.head(feats, name)
        bad = int((feats != f_gold).sum()) + int((y != y_gold).sum())
        res["tasks"][name] = {"values": int(feats.size + y.size), "mismatches": bad,
                              "latency_s": acc.last_latency_s, "wall_s": acc.last_wall_s}
        res["mismatches"] += bad
        outputs[name] = hw.act.to_float(y)
    if keep_outputs:
        res["images_float"], res["outputs"] = images, outputs
    return res

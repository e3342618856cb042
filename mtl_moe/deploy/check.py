"""Every task of an export through the deployment driver, compared with the golden model.

Used by ``mtl-moe run``, the notebook and the tests: the same images through ``Accelerator.infer``
(host pre-processing, the accelerator's backbone, the host head, post-processing), its features and
prediction against the golden model's as counts of mismatching values, and the call's latency split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtl_moe.csim import input_codes, test_images
from mtl_moe.golden import GoldenModel

TIMES = ("pre_s", "accelerator_s", "head_s", "post_s", "end_to_end_s")  # infer's split, in order


def run_and_check(acc: Any, n_images: int = 1, tasks: list[str] | None = None, seed: int = 0,
                  keep_outputs: bool = False, images: np.ndarray | None = None) -> dict[str, Any]:
    """Run every task (or ``tasks``) on ``acc`` (an Accelerator) for ``images`` (float, normalised),
    by default n_images validation scenes rendered with ``seed``.

    Per task: ``mismatches`` of the prediction against golden's (of ``values``), ``feature_mismatches``
    of the backbone features (of ``feature_values``), ``heads`` (where the head ran), the latency
    split of :data:`TIMES` (host clock, all images of the run), ``latency_s`` (start → done on the
    backend's clock) and ``wall_s`` (image written → features read). The top-level ``mismatches``
    counts both kinds over every task: 0 means features and predictions are bit-exact.
    """
    cfg, hw = acc.config, acc.hw
    if images is None:
        images = test_images(cfg, n_images, seed)
    n_images = len(images)
    x = input_codes(images, hw)
    golden = GoldenModel(cfg, hw, acc.params)
    heads = getattr(acc, "heads", "host")
    res: dict[str, Any] = {"backend": getattr(acc.backend, "name", type(acc.backend).__name__),
                           "heads": heads, "images": n_images, "mismatches": 0, "tasks": {}}
    outputs: dict[str, np.ndarray] = {}
    for name in tasks or [t.name for t in cfg.tasks]:
        f_gold = golden.features(x, name)
        y_gold = golden._head(f_gold, name)
        y = acc.infer(images, name)
        feats, timing = acc.last_features, acc.last_timing
        bad_y = _mismatches(acc.last_output_codes, y_gold)
        # heads on the accelerator: no features come back (None), the prediction is the whole check
        bad_f = _mismatches(feats, f_gold) if feats is not None else None
        res["tasks"][name] = {"values": int(y_gold.size), "mismatches": bad_y,
                              "feature_values": int(f_gold.size) if feats is not None else None,
                              "feature_mismatches": bad_f,
                              "heads": heads, **{k: timing[k] for k in TIMES},
                              "latency_s": acc.last_latency_s, "wall_s": acc.last_wall_s}
        res["mismatches"] += bad_y + (bad_f or 0)
        outputs[name] = y
    if keep_outputs:
        res["images_float"], res["outputs"] = images, outputs
    return res


def _mismatches(got: np.ndarray, want: np.ndarray) -> int:
    """Mismatching values; an array of another shape mismatches in every value (no broadcasting)."""
    return int((got != want).sum()) if got.shape == want.shape else int(want.size)

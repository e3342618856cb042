"""mtl_moe.rtl's parameters of the RTL sequencer without a simulator: what it refuses, in one line."""

from __future__ import annotations

import pytest

from mtl_moe.config import get_preset
from mtl_moe.hls_export import KernelParams
from mtl_moe.hw import get_hw
from mtl_moe.rtl import accel_seq_parameters


def test_task_conditioned_router_is_refused(tmp_path):
    """The sequencer has no task-embedding add before the gate linear (program.F_TASK_EMB): a
    task-conditioned export would route on the attention output. Refused, naming what would do."""
    cfg = get_preset("demo").replace(router="task_conditioned")
    with pytest.raises(ValueError, match="task_conditioned.*per_task' or 'shared'") as e:
        accel_seq_parameters(get_hw("w16a32"), KernelParams(), cfg, tmp_path, cfg.n_tokens, 8, 8)
    assert "\n" not in str(e.value)
    for router in ("per_task", "shared"):  # the routers it runs
        accel_seq_parameters(get_hw("w16a32"), KernelParams(), get_preset("demo").replace(router=router),
                             tmp_path, cfg.n_tokens, 8, 8)

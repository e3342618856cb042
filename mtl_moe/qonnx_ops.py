"""QONNX custom ops for what QONNX cannot express: the hardware's table nonlinearities.

qonnx executes a node of domain ``mtl_moe.qonnx_ops`` by importing this module and looking its
op_type up in :data:`custom_op`. Each op documents its attributes; its semantics are the integer
function of :mod:`mtl_moe.nonlinear` (spec: ``mtl_moe/ARITHMETIC.md``).

``TableGelu`` (domain ``mtl_moe.qonnx_ops``), one input, one output, same shape:
    y = gelu_table(x) — GELU(x) = ReLU(x) − δ(|x|), δ tabulated at step 2^-step_log2 on
    [0, x_max] with linear interpolation, entries ap_ufixed<entry_width, entry_int_bits,
    entry_rounding>; the input must already lie on the grid of
    ap_fixed<act_width, act_int_bits> (it follows a Quant node of that type) and the output is on
    the same grid (act_rounding, act_overflow). Attributes: act_width, act_int_bits, act_rounding,
    act_overflow, x_max, step_log2, entry_width, entry_int_bits, entry_rounding.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.custom_op.base import CustomOp

from mtl_moe.fixed import Fixed
from mtl_moe.nonlinear import NonlinearSpec, TableSpec, gelu


class TableGelu(CustomOp):
    def get_nodeattr_types(self) -> dict:
        return {
            "act_width": ("i", True, 32), "act_int_bits": ("i", True, 10),
            "act_rounding": ("s", False, "TRN"), "act_overflow": ("s", False, "WRAP"),
            "x_max": ("f", True, 5.5), "step_log2": ("i", True, 5),
            "entry_width": ("i", True, 18), "entry_int_bits": ("i", True, 0),
            "entry_rounding": ("s", False, "RND"),
        }

    def _types(self) -> tuple[Fixed, NonlinearSpec]:
        g = self.get_nodeattr
        act = Fixed(g("act_width"), g("act_int_bits"), True, g("act_rounding"), g("act_overflow"))
        entry = Fixed(g("entry_width"), g("entry_int_bits"), False, g("entry_rounding"))
        return act, NonlinearSpec(gelu=TableSpec(0.0, float(g("x_max")), g("step_log2"), entry))

    def make_shape_compatible_op(self, model):  # type: ignore[no-untyped-def]
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model):  # type: ignore[no-untyped-def]
        node = self.onnx_node
        model.set_tensor_datatype(node.output[0], model.get_tensor_datatype(node.input[0]))

    def execute_node(self, context, graph):  # type: ignore[no-untyped-def]
        node = self.onnx_node
        act, spec = self._types()
        x = np.asarray(context[node.input[0]], dtype=np.float64)
        c = np.clip(np.round(x * 2.0**act.frac_bits), act.min_code, act.max_code).astype(np.int64)
        y = gelu(c, act, act, spec).astype(np.float64) / 2.0**act.frac_bits
        context[node.output[0]] = y.astype(context[node.input[0]].dtype)

    def verify_node(self) -> list[str]:
        return []


custom_op = {"TableGelu": TableGelu}

"""The performance model: its arithmetic on hand-checked cases, and the Edge-MoE validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mtl_moe.config import get_preset
from mtl_moe.hw import get_hw
from mtl_moe.perf import BOARDS, DESIGNS, EDGE_MOE_MS, LUT_FF_SCOPE, Design, PerfModel, _dsp_per_mac, perf

TINY = get_preset("m3vit-tiny")
W16 = get_hw("w16a32")


def _model(**design) -> PerfModel:
    return PerfModel(TINY, W16, Design(**design), BOARDS["zcu102"])


def test_linear_unit_cycles_by_hand():
    """Edge-MoE's schedule (no overlap): the layer's weights load, then the unit computes."""
    m = _model(t_in=16, t_out=16, axi_bits=256, overlap_weight_load=False)
    # 129 rows x ceil(192/16)=12 output tiles x ceil(192/16)=12 input tiles
    assert m.linear(129, 192, 192)["compute"] == 129 * 12 * 12
    # weights: 192 rows x ceil(192 / (256/16)) = 12 beats, bias ceil(192 / (256/32)) = 24 beats;
    # a 256-bit beat through a 128-bit HP port takes 2 cycles
    assert m.beat_cycles == 2
    assert m.linear(129, 192, 192)["load"] == (192 * 12 + 24) * 2
    # partial tiles round up (17 outputs need 2 tiles: 2 cycles), but writing 17 32-bit outputs
    # takes ceil(17/8) = 3 beats of 2 cycles: the stream bounds the kernel at 6 cycles
    assert m.linear(1, 16, 17)["compute"] == max(1 * 2 * 1, 3 * 2) == 6


def test_ping_pong_tiles_hide_loads_behind_compute():
    """Ours: tile j+1 (16 x 16 weights = 16 beats of 2 cycles = 32 cycles) loads while tile j is
    applied to every row; the MAC tile's 2 stages + the accumulate stage drain at the end."""
    m = _model(t_in=16, t_out=16, axi_bits=256)
    assert m.mac_latency == 2
    # compute-bound: 129 rows > 32 cycles a tile; 144 tiles; bias 24 beats x 2 loads with tile 0
    r = m.linear(129, 192, 192)
    assert r["compute"] == 143 * 129 + 129 + 2 + 1 and r["load"] == 32 + 24 * 2
    # load-bound: an expert with 8 tokens, 24 x 12 tiles, each waits for its 32-cycle load
    assert m.linear(8, 192, 384)["compute"] == 287 * 32 + 8 + 3
    # consecutive calls do not overlap: each loads its first tile before it computes
    parts = [{"load": 10, "compute": 100}, {"load": 50, "compute": 30}]
    assert m._seq(parts) == 10 + 100 + 50 + 30


def test_dsp_per_mac():
    assert _dsp_per_mac(32, 16) == 2  # 32 bits do not fit the 27-bit port: two DSP48E2
    assert _dsp_per_mac(16, 16) == 1
    assert _dsp_per_mac(8, 8) == 0.5  # two 8-bit MACs pack into one DSP48E2
    assert _dsp_per_mac(32, 32) == 4


def test_expert_time_follows_the_token_counts():
    """Same 258 token-slots per layer, on 1 expert instead of 16: the compute is the same, and 15
    experts' weight loads disappear. One expert's load, by hand: W1 384 x ceil(192/16) + bias
    ceil(384/8) beats, W2 192 x ceil(384/16) + ceil(192/8) beats, 2 cycles per beat."""
    base = PerfModel(TINY, W16, DESIGNS["edge-moe"], BOARDS["zcu102"]).kernels()["experts"]
    skew = [[258] + [0] * 15] * 6
    one = PerfModel(TINY, W16, DESIGNS["edge-moe"], BOARDS["zcu102"], skew).kernels()["experts"]
    per_expert_load = ((384 * 12 + 48) + (192 * 24 + 24)) * 2
    assert base - one == 15 * per_expert_load * 6


def test_attention_passes_scale_with_p():
    a = perf(TINY, W16, "zcu102", "edge-moe")["breakdown_ms"]["attn_qk_softmax"]
    b = perf(TINY, W16, "zcu102", "edge-moe", attn_p=8)["breakdown_ms"]["attn_qk_softmax"]
    assert b == pytest.approx(a * 17 / 33, rel=1e-9)  # ceil((129+7)/8)=17 vs ceil((129+3)/4)=33 passes


def test_edge_moe_validation_within_15_percent():
    """The acceptance criterion of the performance model: Edge-MoE's published design (ZCU102,
    300 MHz, 16x16, W16A32, m3vit-tiny) measured 34.64 ms per image."""
    r = perf(TINY, W16, "zcu102", "edge-moe")
    assert abs(r["latency_ms"] - EDGE_MOE_MS) / EDGE_MOE_MS <= 0.15, r["breakdown_ms"]
    assert r["modeled"] is True


def test_perf_cli_json_and_report(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "perf", "m3vit-tiny", "--board", "zcu104", "--json",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"modeled", "latency_ms", "gops", "dsp", "bram36", "uram", "lut", "power_w"} <= set(d)
    assert d["modeled"] is True and d["latency_ms"] > 0
    md = (tmp_path / "perf.md").read_text()
    assert "modeled" in md and "34.64" in md and (tmp_path / "perf.png").stat().st_size > 0
    assert LUT_FF_SCOPE in md  # LUT/FF never shown without saying they are datapath units only
    full = json.loads((tmp_path / "perf.json").read_text())
    assert full["lut"] == d["lut"] and "ff" in full and full["lut_ff_scope"] == LUT_FF_SCOPE
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "perf", "m3vit-tiny", "--board", "vcu118"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown board" in r.stderr


def test_pareto_front_by_hand():
    from mtl_moe.dse import pareto
    pts = [{"latency_ms": 10, "dsp": 100, "mem_bram36_eq": 10, "id": "a"},
           {"latency_ms": 5, "dsp": 200, "mem_bram36_eq": 10, "id": "b"},
           {"latency_ms": 12, "dsp": 150, "mem_bram36_eq": 10, "id": "dominated by a"},
           {"latency_ms": 20, "dsp": 50, "mem_bram36_eq": 50, "id": "c"}]
    assert [p["id"] for p in pareto(pts)] == ["b", "a", "c"]


def test_dse_finds_fitting_points_and_export_uses_the_choice(tmp_path):
    from mtl_moe.dse import MARGIN, run
    s = run(TINY, W16, "zcu104", tmp_path)
    b = s["best"]
    assert b["fits"] and b["dsp"] <= MARGIN * BOARDS["zcu104"].dsp and b["bram36"] <= MARGIN * 312
    assert all(p["latency_ms"] >= b["latency_ms"] for p in s["pareto_front"])
    d = json.loads((tmp_path / "design.json").read_text())
    assert d["t_in"] == b["design"]["t_in"] and d["modeled_latency_ms"] == b["latency_ms"]
    # the chosen point goes into an export's config.h
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.model import M3ViT
    from mtl_moe.quant import QuantM3ViT
    demo = get_preset("demo").replace(n_layer=1, moe_blocks=(0,))
    kp = KernelParams(t_in=d["t_in"], t_out=d["t_out"], attn_p=d["attn_p"], axi_bits=d["axi_bits"])
    export(QuantM3ViT(M3ViT(demo), W16), tmp_path / "exp", kp=kp)
    header = (tmp_path / "exp" / "config.h").read_text()
    assert f"T_IN = {d['t_in']}, T_OUT = {d['t_out']}, ATTN_P = {d['attn_p']}" in header


def test_roofline_operational_intensity_by_hand():
    """Edge-MoE's Q.K^T per layer: 2*T^2*D ops over the K re-stream (33 groups x 129 rows x 24
    beats of 32 bytes) plus one read of Q (129 x 24 beats): 1.897 ops per DDR byte."""
    rf = perf(TINY, W16, "zcu102", "edge-moe")["roofline"]
    want = 2 * 129 * 129 * 192 / ((33 * 129 * 24 + 129 * 24) * 32)
    assert rf["kernels"]["attn_qk_softmax"]["ops_per_byte"] == pytest.approx(want, rel=1e-12)
    assert rf["compute_roof_gops"] == pytest.approx(16 * 16 * 2 * 0.3)  # 256 MACs at 300 MHz
    # no kernel beats the linear unit's peak
    assert all(v["gops"] <= rf["compute_roof_gops"] for v in rf["kernels"].values())


def _row(unit: str, lut: int, ff: int, dsp: int = 0, **parameters) -> dict:
    return {"unit": unit, "preset": "w16a32", "parameters": parameters, "lut": lut, "ff": ff, "dsp48e2": dsp}


# A made-up Yosys table (numbers chosen to check by hand); no layernorm_unit row.
UNITS = {(r["unit"], "w16a32"): r for r in (
    _row("mac_tile", 1000, 400, 512, T_IN=16, T_OUT=16), _row("gelu_unit", 10, 3),
    _row("softmax_unit", 5, 1), _row("topk_gate", 7, 2))}


def test_lut_ff_scale_the_mac_tile_and_count_units_by_hand():
    """8x8 tiles: each 1/4 of the synthesised 16x16 tile; two of them = 0.5 tile = 500 LUT, 200 FF.
    GELU: one per value of the 256-bit output beat = 8 lanes of 32 bits: 80 LUT, 24 FF. Softmax:
    one per query row, P = 4: 20 LUT, 4 FF. Top-k: one: 7 LUT, 2 FF."""
    dp = PerfModel(TINY, W16, Design(t_in=8, t_out=8, n_linear=2), BOARDS["zcu104"], units=UNITS).datapath()
    assert dp["units"]["mac_tile"]["count"] == 0.5 and dp["units"]["mac_tile"]["lut"] == 500
    assert dp["units"]["gelu_unit"]["count"] == 8 and dp["units"]["softmax_unit"]["count"] == 4
    assert (dp["lut"], dp["ff"]) == (500 + 80 + 20 + 7, 200 + 24 + 4 + 2)
    one = PerfModel(TINY, W16, Design(t_in=8, t_out=8), BOARDS["zcu104"], units=UNITS).datapath()
    assert one["units"]["mac_tile"]["lut"] == 1000 / 4
    assert dp["scope"] == LUT_FF_SCOPE


def test_a_missing_unit_is_reported_as_not_counted():
    dp = PerfModel(TINY, W16, Design(), BOARDS["zcu104"], units=UNITS).datapath()
    assert "layernorm_unit" not in dp["units"] and "not counted" in dp["not_counted"]["layernorm_unit"]
    assert set(dp["not_counted"]) == {"layernorm_unit"}
    none = PerfModel(TINY, W16, Design(), BOARDS["zcu104"], units={}).report()
    assert none["lut"] is None and none["ff"] is None  # nothing counted: no number, not zero
    assert set(none["resources"]["datapath"]["not_counted"]) == {"mac_tile", "gelu_unit", "softmax_unit",
                                                                 "layernorm_unit", "topk_gate"}


def test_int8_dsp_note_when_the_rtl_does_not_pack_two_macs_per_dsp():
    int8 = get_hw("int8")
    units = {("mac_tile", "int8"): {**_row("mac_tile", 100, 10, 256, T_IN=16, T_OUT=16), "preset": "int8"}}
    r = PerfModel(TINY, int8, Design(), BOARDS["zcu104"], units=units).report()
    assert r["resources"]["dsp_breakdown"]["linear_unit"] == 128  # the model's 0.5 DSP per 8-bit MAC, kept
    assert any("2x the modeled DSPs" in n for n in r["resources"]["datapath"]["dsp_notes"])


def test_dse_rejects_a_point_whose_datapath_luts_exceed_the_board():
    from mtl_moe.dse import sweep
    space = {"t_in": [16], "t_out": [16]}
    big = {**UNITS, ("mac_tile", "w16a32"): _row("mac_tile", BOARDS["zcu104"].lut + 1, 400, 512,
                                                  T_IN=16, T_OUT=16)}
    [ok] = sweep(TINY, W16, "zcu104", space, units=UNITS)
    [too_big] = sweep(TINY, W16, "zcu104", space, units=big)
    assert ok["fits"] and ok["dsp"] == too_big["dsp"] and ok["bram36"] == too_big["bram36"]
    assert too_big["lut"] > BOARDS["zcu104"].lut and not too_big["fits"]


def test_real_units_pack_int8_macs_as_the_model_counts():
    """units.json (Yosys on the RTL MAC tile) against the model's DSP count: no discrepancy note."""
    r = PerfModel(TINY, get_hw("int8"), Design(), BOARDS["zcu104"]).report()
    assert r["resources"]["datapath"]["units"]["mac_tile"]["count"] == 1
    notes = r["resources"]["datapath"]["dsp_notes"]
    assert not any("per MAC in Yosys" in n for n in notes), notes


def test_perf_on_an_export_reports_vivado_power_once_the_report_exists(tmp_path):
    """No power without Vivado; with bitstream/power.rpt (Vivado's report_power format) the export's
    perf reports that estimate and GOPS/W, saying where both come from; a file that is not a power
    report is refused by name."""
    from mtl_moe.hls_export import export
    from mtl_moe.model import M3ViT
    from mtl_moe.perf import read_vivado_power
    from mtl_moe.quant import QuantM3ViT

    ex = tmp_path / "exp"
    export(QuantM3ViT(M3ViT(get_preset("demo").replace(n_layer=1, moe_blocks=(0,))), W16), ex)

    def run() -> dict:
        r = subprocess.run([sys.executable, "-m", "mtl_moe", "perf", str(ex), "--json"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    d = run()
    assert d["power_w"] is None and d["gops_per_w"] is None and "not modeled" in d["power_note"]
    (ex / "bitstream").mkdir()
    (ex / "bitstream" / "power.rpt").write_text(
        "1. Summary\n----------\n\n+--------------------------+--------------+\n"
        "| Total On-Chip Power (W)  | 4.250        |\n| Design Power Budget (W)  | Unspecified* |\n"
        "| Dynamic (W)              | 3.500        |\n| Device Static (W)        | 0.750        |\n"
        "| Confidence Level         | Medium       |\n+--------------------------+--------------+\n")
    d = run()
    assert d["power_w"] == 4.25 and d["gops_per_w"] == pytest.approx(d["gops"] / 4.25)
    assert "Vivado report_power" in d["power_note"] and "Medium" in d["power_note"]
    (ex / "bitstream" / "not_power.rpt").write_text("| CLB LUTs | 1234 |\n")
    with pytest.raises(ValueError, match="Total On-Chip Power"):
        read_vivado_power(ex / "bitstream" / "not_power.rpt")


def test_layernorm_follows_the_rtl_unit_or_its_ddr_traffic():
    """m3vit-tiny, w16a32: the unit takes 8 lanes (one 256-bit beat); a row of D = 192 is 24 beats:
    3 x 24 + 8 = 80 cycles in the RTL unit (mtl_moe.rtl.layernorm_timing), or 2 x 24 beats of DDR
    traffic at 2 cycles a beat = 96 if feature maps live in DDR. 129 rows, 2 per block x 12 + ln_f."""
    ddr = _model(t_in=16, t_out=16, axi_bits=256)
    assert ddr.ln_lanes == 8
    assert ddr.kernels()["layernorm"] == 25 * 129 * max(3 * 24 + 8, 2 * 24 * 2)
    on_chip = _model(t_in=16, t_out=16, axi_bits=256, fm_on_chip=True)
    assert on_chip.kernels()["layernorm"] == 25 * 129 * (3 * 24 + 8)  # now the unit bounds it

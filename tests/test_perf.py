"""The performance model: its arithmetic on hand-checked cases, and the Edge-MoE validation."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from mtl_moe.config import get_preset
from mtl_moe.hw import get_hw
from mtl_moe.perf import (
    BOARDS,
    DESIGNS,
    EDGE_MOE_MS,
    LUT_FF_SCOPE,
    MODELED_NOTE,
    Design,
    PerfModel,
    _dsp_per_mac,
    perf,
    perf_of_export,
    validate_edge_moe,
)

TINY = get_preset("m3vit-tiny")
W16 = get_hw("w16a32")


def _model(**design) -> PerfModel:
    return PerfModel(TINY, W16, Design(**design), BOARDS["zcu102"])


# the boards' memory assumptions in PL cycles at 300 MHz: 10 ns per burst, 213.3 ns to the first beat
BURST, LATENCY = 3, 64


def test_linear_unit_cycles_by_hand():
    """Edge-MoE's schedule (no overlap): the layer's weights load, then the unit computes."""
    m = _model(t_in=16, t_out=16, axi_bits=256, overlap_weight_load=False, fm_on_chip=False, kv_on_chip=False)
    assert m.burst_overhead_cycles == pytest.approx(BURST) and m.read_latency_cycles == pytest.approx(LATENCY)
    # 129 rows x ceil(192/16)=12 output tiles x ceil(192/16)=12 input tiles
    assert m.linear(129, 192, 192)["compute"] == 129 * 12 * 12
    # weights: 192 rows x ceil(192 / (256/16)) = 12 beats, bias ceil(192 / (256/32)) = 24 beats;
    # a 256-bit beat through a 128-bit HP port takes 2 cycles; bursts of at most 16 beats (HLS
    # default) pay the per-burst overhead, the call one first-beat latency
    assert m.beat_cycles == 2
    beats = 192 * 12 + 24
    assert m.linear(129, 192, 192)["load"] == pytest.approx(beats * 2 + -(-beats // 16) * BURST + LATENCY)
    # partial tiles round up (17 outputs need 2 tiles: 2 cycles), but writing 17 32-bit outputs
    # takes ceil(17/8) = 3 beats of 2 cycles: the stream bounds the kernel at 6 cycles
    assert m.linear(1, 16, 17)["compute"] == max(1 * 2 * 1, 3 * 2) == 6


def test_ping_pong_tiles_hide_loads_behind_compute():
    """Ours: tile j+1 (16 x 16 weights = one burst of 16 beats of 2 cycles + the burst overhead = 35
    cycles) loads while tile j is applied to every row; the MAC tile's 2 stages + the accumulate stage
    drain at the end."""
    m = _model(t_in=16, t_out=16, axi_bits=256)
    assert m.mac_latency == 2 and m.tile_layout.tile_beats == 16
    tile = 16 * 2 + BURST
    assert m.tile_load_cycles == pytest.approx(tile)
    # compute-bound: 129 rows > 35 cycles a tile; 144 tiles; bias: 24 beats in two bursts of 16 (the
    # weight bundle's max_read_burst_length is one tile), then tile 0, behind one first-beat latency
    r = m.linear(129, 192, 192)
    assert r["compute"] == 143 * 129 + 129 + 2 + 1
    assert r["load"] == pytest.approx(tile + LATENCY + 24 * 2 + 2 * BURST) and r["stall"] == 0
    # load-bound: an expert with 8 tokens, 24 x 12 tiles, each waits for its 35-cycle load
    r = m.linear(8, 192, 384)
    assert r["compute"] == pytest.approx(287 * tile + 8 + 3) and r["stall"] == pytest.approx(287 * (tile - 8))
    # consecutive calls do not overlap: each loads its first tile before it computes
    parts = [{"load": 10, "compute": 100}, {"load": 50, "compute": 30}]
    assert m._seq(parts) == 10 + 100 + 50 + 30


def test_two_weight_planes_pay_one_burst_overhead_per_tile_not_two():
    """Issue 16: with two weight ports each tile is two half-tile bursts, one per port, issued together
    (kernels.h lu_load_weights: iteration i reads beat i of plane 0 through gmem_w and of plane 1 through
    gmem_w1), so a tile costs PLANE_BEATS beats at the port rate and one per-burst overhead, and each
    port's run of a matrix is exactly one burst per tile at the exported burst length."""
    one = _model(t_in=16, t_out=16, axi_bits=256)
    two = _model(t_in=16, t_out=16, axi_bits=256, weight_ports=2)
    # HP1 and HP3 on distinct XPIs: 16 bytes a cycle each (128-bit ports; the DDR share, 19.2 GB/s x 0.75
    # / 300 MHz / 2 = 24 bytes, does not bind), so a 32-byte beat takes 2 cycles on each
    assert two.weight_beat_cycles == 2 and two.read_burst_beats == 8 and one.read_burst_beats == 16
    assert two.tile_load_cycles == pytest.approx(8 * 2 + BURST)  # not 8 * 2 + 2 * BURST
    assert one.tile_load_cycles == pytest.approx(16 * 2 + BURST)
    n_tiles = 12 * 24  # a 384 x 192 matrix: each port reads n_tiles x 8 beats
    assert two.read_bursts(n_tiles * 8) == n_tiles and one.read_bursts(n_tiles * 16) == n_tiles
    # a defect that charged both planes' bursts would make the 2-port tile cost 16 + 6 cycles
    assert two.tile_load_cycles != pytest.approx(8 * 2 + 2 * BURST)


def test_weight_tile_registers_are_the_rtl_engines_nbuf():
    """The FF count holds linear_engine.sv's NBUF weight tiles (mtl_moe.rtl.tile_buffers), not 2. By hand
    on the ZCU104 at 300 MHz: latency 64 cycles; w16a32 tile 16 beats x 2 cycles + 3 = 35 cycles, so
    1 + ceil((64 + 35) / 35) = 4 buffers of 16 x 16 x 16 bits; int8 tile 8 x 2 + 3 = 19 cycles,
    1 + ceil(83 / 19) = 6 -> 8 (a power of two) buffers of 16 x 16 x 8 bits."""
    for hw, nbuf, bits in (("w16a32", 4, 16), ("int8", 8, 8)):
        m = PerfModel(TINY, get_hw(hw), Design(), BOARDS["zcu104"])
        assert m.tile_buffers == nbuf
        assert m.resources()["weight_tile_ff"] == nbuf * 16 * 16 * bits
    edge = PerfModel(TINY, W16, DESIGNS["edge-moe"], BOARDS["zcu104"])
    assert edge.resources()["weight_tile_ff"] == 0  # load-then-compute: no tile buffers


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
    w1, w2 = 384 * 12 + 48, 192 * 24 + 24  # beats, in bursts of 16, each call behind one latency
    per_expert_load = sum(b * 2 + -(-b // 16) * BURST + LATENCY for b in (w1, w2))
    assert base - one == pytest.approx(15 * per_expert_load * 6)


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
    # under the honest memory model (port sharing, DDR efficiency, burst overhead, latency) it stays
    # within a few percent of the published figure
    assert abs(validate_edge_moe(TINY, W16)["error_percent"]) <= 5.0


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
    from mtl_moe.dse import MARGIN, design_to_kernel_params, run
    s = run(TINY, W16, "zcu104", tmp_path, space={"t_in": [16, 32], "t_out": [8, 16], "attn_lanes": [0, 16]})
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
    kpd = design_to_kernel_params(d)  # what `export --design` takes; KernelParams fields the kernels have
    kp = KernelParams(**{k: v for k, v in kpd.items() if k in KernelParams.__dataclass_fields__})
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
    """A 16x8 tile: 1/2 of the synthesised 16x16 tile = 500 LUT, 200 FF (an 8x8 one: 1/4).
    GELU: one per value of the 256-bit output beat = 8 lanes of 32 bits: 80 LUT, 24 FF. Softmax:
    one per query row, P = 4: 20 LUT, 4 FF. Top-k: one: 7 LUT, 2 FF."""
    dp = PerfModel(TINY, W16, Design(t_in=8, t_out=16), BOARDS["zcu104"], units=UNITS).datapath()
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
    ddr = _model(t_in=16, t_out=16, axi_bits=256, fm_on_chip=False)
    assert ddr.ln_lanes == 8
    assert ddr.kernels()["layernorm"] == 25 * 129 * max(3 * 24 + 8, 2 * 24 * 2)
    on_chip = _model(t_in=16, t_out=16, axi_bits=256)  # ours: feature maps on chip
    # now the unit bounds it; gamma and beta (24 beats each, two bursts of 16 each: the weight
    # bundle's max_read_burst_length is one tile) load once per call
    want = 25 * (129 * (3 * 24 + 8) + 2 * (24 * 2 + 2 * BURST) + LATENCY)
    assert on_chip.kernels()["layernorm"] == pytest.approx(want)


# ---- the memory system (UG1085 port sharing, DDR efficiency, burst overhead) ------------------------

def test_port_sharing_halves_two_weight_ports_on_one_xpi():
    """HP1 and HP2 share XPI 4 (UG1085): two weight ports there get one port's bandwidth, where HP1 +
    HP3 (the export's mapping) or ports that reached DDR independently get two; the load-bound
    experts take longer, by the slower tile loads."""
    d = Design(t_in=32, t_out=8, weight_ports=2)
    ours = PerfModel(TINY, W16, d, BOARDS["zcu104"])
    shared = PerfModel(TINY, W16, d, BOARDS["zcu104"], weight_hp=("HP1", "HP2"))
    own_xpi = replace(BOARDS["zcu104"], hp_xpi={h: h for h in BOARDS["zcu104"].hp_xpi})
    independent = PerfModel(TINY, W16, d, own_xpi, weight_hp=("HP1", "HP2"))
    assert ours.weight_hps == ("HP1", "HP3")
    assert ours.weight_bytes_per_cycle == independent.weight_bytes_per_cycle == 32  # 2 x 16 B a cycle
    assert shared.weight_bytes_per_cycle == 16  # one 128-bit XPI beat a cycle for both
    # a 32 x 8 tile of 16-bit codes: 16 beats, 8 per port: 8 x 2 cycles vs 8 x 4 cycles (+ overhead)
    assert ours.tile_load_cycles == pytest.approx(8 * 2 + BURST)
    assert shared.tile_load_cycles == pytest.approx(8 * 4 + BURST)
    assert shared.kernels()["experts"] > 1.3 * ours.kernels()["experts"]
    with pytest.raises(ValueError, match="weight_ports = 4"):  # no third or fourth weight bundle
        PerfModel(TINY, W16, Design(weight_ports=4), BOARDS["zcu104"]).kernels()


def test_ddr_efficiency_scales_memory_bound_kernels():
    """Edge-MoE's attention re-streams K/V from DDR through one port: once the DDR share (peak x
    efficiency) is below the port's 16 B a cycle, its time scales as 1 / efficiency; the default 0.75
    (14.4 GB/s) is above one port's 4.8 GB/s, so it does not bind there; a compute-only kernel does
    not move."""
    def attn(eff: float) -> dict[str, float]:
        b = replace(BOARDS["zcu102"], ddr_efficiency=eff)
        return PerfModel(TINY, W16, DESIGNS["edge-moe"], b).kernels()
    full, default, low, lower = attn(1.0), attn(0.75), attn(0.1), attn(0.05)
    assert default["attn_av"] == full["attn_av"]
    # 0.1 x 19.2 GB/s / 300 MHz = 6.4 B a cycle: a 32-byte beat in 5 cycles, at 0.05 in 10
    assert low["attn_av"] / default["attn_av"] == pytest.approx(5 / 2)
    assert lower["attn_av"] / low["attn_av"] == pytest.approx(2)
    assert low["add"] > default["add"]  # Edge-MoE's residual adds stream DDR too
    # ours: attention on chip, no DDR traffic: the efficiency does not move it
    ours = [PerfModel(TINY, W16, Design(), replace(BOARDS["zcu104"], ddr_efficiency=e)).kernels()["attn_av"]
            for e in (1.0, 0.05)]
    assert ours[0] == ours[1]


def test_board_memory_figures_carry_their_sources():
    for b in BOARDS.values():
        assert 0 < b.ddr_efficiency < 1 and b.burst_overhead_ns > 0 and b.read_latency_ns > 0
        for k in ("ddr_efficiency", "port_sharing", "read_latency_ns", "burst_overhead_ns", "xpi_bits",
                  "port_map"):
            assert b.sources.get(k), (b.name, k)
        assert "assumed" in b.sources["ddr_efficiency"] and "UG1085" in b.sources["port_sharing"]
        assert b.hp_xpi["HP1"] == b.hp_xpi["HP2"] and len({b.hp_xpi[h] for h in ("HP0", "HP1", "HP3")}) == 3


def test_reports_label_hls_figures_as_modeled(tmp_path):
    from mtl_moe.perf import write_report
    r = perf(TINY, W16, "zcu104")
    assert r["modeled_note"] == MODELED_NOTE and r["memory_system"]["weight_ports"]["HP1"]["gbs"] == 4.8
    write_report(r, str(tmp_path))
    assert MODELED_NOTE in (tmp_path / "perf.md").read_text()


def test_roofline_gives_every_kernel_its_own_roof():
    rf = perf(TINY, W16, "zcu104")["roofline"]
    ks = rf["kernels"]
    assert ks["attn_av"]["ops_per_byte"] is None  # on chip: no DDR traffic
    assert ks["attn_av"]["compute_roof_gops"] == pytest.approx(4 * 8 * 2 * 0.3)  # P x lanes MACs
    assert ks["experts"]["compute_roof_gops"] == pytest.approx(16 * 16 * 2 * 0.3)
    assert ks["experts"]["bw_roof_gbs"] == pytest.approx(4.8)
    for v in ks.values():
        if v["compute_roof_gops"]:
            assert v["gops"] <= v["compute_roof_gops"] * (1 + 1e-9)
            if v["ops_per_byte"]:
                assert v["gops"] <= v["bw_roof_gbs"] * v["ops_per_byte"] * (1 + 1e-9)


def _fake_export(tmp_path, kernel_params: dict, **meta) -> str:
    ex = tmp_path / "exp"
    ex.mkdir(parents=True)
    TINY.save(ex / "model_config.json")
    (ex / "export.json").write_text(json.dumps({"hw": "w16a32", "kernel_params": kernel_params, **meta}))
    return str(ex)


def test_perf_of_export_reads_old_and_new_kernel_params(tmp_path):
    """An export from before attn_lanes / clock_mhz / weight_ports takes the defaults (its top-level
    clock if it has one); a new one is modeled with them, as the DSE modeled that point."""
    old_kp = {"t_in": 16, "t_out": 16, "attn_p": 4, "axi_bits": 256}
    old = perf_of_export(_fake_export(tmp_path / "old", old_kp, clock_mhz=300))
    assert old["latency_ms"] == pytest.approx(perf(TINY, W16, "zcu104")["latency_ms"])
    kp = {"t_in": 32, "t_out": 8, "attn_p": 8, "axi_bits": 256, "attn_lanes": 16, "clock_mhz": 250.0,
          "weight_ports": 1, "some_other_export_key": 1}
    new = perf_of_export(_fake_export(tmp_path / "new", kp))
    d = Design(t_in=32, t_out=8, attn_p=8, attn_lanes=16, clock_mhz=250.0, weight_ports=1)
    want = PerfModel(TINY, W16, d, BOARDS["zcu104"]).report()
    assert new["latency_ms"] == pytest.approx(want["latency_ms"]) and new["clock_mhz"] == 250.0


# ---- the task heads on the accelerator (kernels.h heads) -------------------------------------------
DEMO = get_preset("demo")


def _heads_model(cfg=DEMO, hw=W16, latency: int = 2, **design) -> PerfModel:
    """The heads on the RTL tests' memory (one 256-bit beat a cycle on every port, no burst overhead,
    ``latency`` cycles to the first beat), where a hand count is short."""
    from mtl_moe.perf import ideal_memory

    mem = ideal_memory(BOARDS["zcu104"], 256, latency)
    return PerfModel(cfg, hw, Design(heads_on_accel=True, **design), mem)


def _head_step(m: PerfModel, op: str, index: int):
    return next(s for s in m.program() if s.op == op and s.layer == index)


def test_head_conv3x3_cycles_by_hand():
    """The demo's first head pass (pup-lite: conv3x3 64 -> 32 channels on the 8 x 8 grid, ReLU, to
    scratch map 1), w16a32 (32-bit act codes: IO_PER = 256 / 32 = 8 a word), T_IN = T_OUT = 16, on
    the ideal memory (a beat a cycle, L = 2 cycles to the first beat). head_schedule gives it bands
    of 1 row (the borrowed buffers' limit), so 8 bands of n = 1, each, from kernels.h head_conv:

    - head_read_rows of rows y0 - 1 .. y0 + 1: HEAD_G = gcd(IO_PER 8, T_IN 16) = 8 codes a step, so
      a pixel of 64 channels is max(8 beats x 8, 4 words x 16) / 8 = 8 steps, a beat a cycle:
      (n + 2) w 8 = 3 x 8 x 8 = 192 iterations at II = 1 (its <= 3 x 8 x 8 = 192 beats arrive at
      the same rate; the first band's 2 x 8 x 8 faster), + L for the first beat;
    - head_im2col: a group of 9 cycles per band word of each output pixel (tap t's band word read
      in cycle t, the previous group's 9 cols words written meanwhile) and one drain group:
      (n w ceil(c / T_IN) + 1) x 9 = (8 x 4 + 1) x 9 = 297 iterations (the 8 x 36 cols words of the
      band, one a cycle, + 9);
    - linear_unit(8 rows, 576 -> 32): 2 x 36 = 72 tiles of 16 x 16 16-bit weights = 16 beats each
      (16 cycles); bias 32 x 32 bits = 4 beats; load = 16 + L + 4, then 71 x max(8 rows, 16) + 8 +
      the MAC tile's 2 stages + 1;
    - head_write_rows to scratch: 32 channels = max(4 beats x 8, 2 words x 16) / 8 = 4 steps a
      pixel: n w 4 = 32 iterations (32 beats, a beat a cycle), + L for the write response.

    Per band (L + 192) + 297 + (20 + L + 71 x 16 + 8 + 3) + (32 + L) = 1688 + 3L = 1694."""
    m = _heads_model()
    assert m.head_ops()[0]["band"] == 1 and m.mac_latency == 2  # the schedule and unit this counts with
    band = (2 + 192) + 297 + (16 + 2 + 4 + 71 * 16 + 8 + 2 + 1) + (32 + 2)
    assert band == 1694
    got = m.step_cost(_head_step(m, "head_conv", 0))
    assert got["cycles"] == pytest.approx(8 * band)
    assert got["macs"] == 8 * 8 * 576 * 32  # every output pixel x K x N, once


def test_head_upsample_cycles_by_hand():
    """The demo's second pass: bilinear x2 of 32 channels, 8 x 8 -> 16 x 16, to scratch map 0.
    kernels.h head_upsample, per output row Y (16 of them): head_read_rows of its two source rows,
    two calls of w x 4 steps (a 32-channel pixel: 4 beats of 8 codes, a beat a cycle) = 32
    iterations (32 beats), each + L; then the output loop, HEAD_G = 8 codes (one source word's
    lanes) a cycle: W x 4 steps = 16 x 4 = 64 iterations (64 beats, a beat a cycle), + L for the write
    response. 16 x (2 (32 + L) + 64 + L) = 16 x (128 + 3L) = 2144."""
    m = _heads_model()
    got = m.step_cost(_head_step(m, "head_upsample", 1))
    assert got["cycles"] == pytest.approx(16 * (2 * (32 + 2) + 64 + 2)) and got["macs"] == 0
    # the store of the features before the passes (head_pack_rows): 64 pixels of 64 channels, 8 steps
    # of 8 codes each (a beat a cycle), + L
    grid = m.step_cost(next(s for s in m.program() if s.op == "head_store_grid"))
    assert grid["cycles"] == pytest.approx(64 * 8 + 2)
    # int8 (8-bit codes: IO_PER = 32 > T_IN = 16): HEAD_G = 16, an fm word a cycle, so a pixel of 64
    # channels is max(2 beats x 32, 4 words x 16) / 16 = 4 steps: 64 x 4 = 256 iterations (128 beats
    # written, one every 2 cycles), + L
    grid8 = _heads_model(hw=get_hw("int8"))
    assert grid8.io_per == 32 and grid8.design.t_in == 16
    got8 = grid8.step_cost(next(s for s in grid8.program() if s.op == "head_store_grid"))
    assert got8["cycles"] == pytest.approx(64 * 4 + 2)
    # a pixel whose beats and fm words do not end together: 20 channels at w16a32 are 3 beats (24
    # codes) and 2 fm words (32 codes): the loop runs to the longer, 32 / 8 = 4 steps
    assert m._px_steps(20) == 4


def test_head_writes_read_modify_write_a_word_a_run_starts_or_ends_inside():
    """head_put reads the word a prediction run starts inside (before its first code) and the one it
    ends inside (to keep the codes after it): codes 3 .. 12 of 8-code words touch words 0 and 1, both
    partly, so 2 beats and 2 reads in the loop, each waiting the latency; an aligned run reads none."""
    m = _heads_model(latency=5)
    assert m._io_write(10, [(3, 10)])["cycles"] == pytest.approx(10 + 2 * 5 + 5)
    assert m._io_write(16, [(8, 16)])["cycles"] == pytest.approx(16 + 5)


def test_per_task_latency_is_backbone_plus_each_tasks_head():
    """m3vit-tiny on ZCU104: the head depends on the task (the classifier's and the final resize's
    channels: semseg's 40 against depth's 1), the backbone does not; with the heads on the
    accelerator the backbone ends at the final LayerNorm (no write_features: the host figure minus
    that one step); latency_ms is the slowest task's end to end, the sum every task's."""
    host, acc = perf(TINY, W16, "zcu104"), perf(TINY, W16, "zcu104", heads_on_accel=True)
    m = PerfModel(TINY, W16, Design(), BOARDS["zcu104"])
    m.kernels()
    wf = next(c for s, c in zip(m.program(), m.step_cycles, strict=True) if s.op == "write_features")
    t = acc["per_task"]
    assert t["semseg"]["backbone_ms"] == pytest.approx(t["depth"]["backbone_ms"])
    assert t["semseg"]["backbone_ms"] == pytest.approx(host["latency_ms"] - wf / 300e3)
    assert t["semseg"]["head_ms"] > t["depth"]["head_ms"] > 0
    for v in t.values():
        assert v["end_to_end_ms"] == pytest.approx(v["backbone_ms"] + v["head_ms"])
        assert v["head_ms"] == pytest.approx(sum(v["head_steps_ms"].values()))
        assert v["head_ms"] == pytest.approx(sum(v["head_loops_ms"].values()))
    assert acc["latency_task"] == "semseg"
    assert acc["latency_ms"] == pytest.approx(t["semseg"]["end_to_end_ms"])
    assert acc["latency_sum_ms"] == pytest.approx(sum(v["end_to_end_ms"] for v in t.values()))
    assert host["heads"] == "host" and all(v["head_ms"] is None for v in host["per_task"].values())
    assert host["latency_sum_ms"] == pytest.approx(2 * host["latency_ms"])


def test_heads_add_their_upsample_multipliers_to_the_dsp_count():
    """Two head_upsample instances (the decoder's x2 and the final resize, both x2 for m3vit-tiny),
    three multipliers a code ((a << 2) + lx (b - a) twice, then the same along y): two (act + 1) x
    3-bit (lx < 4 unsigned, one more bit signed) and one (act + 5) x 3-bit, for each of HEAD_G =
    gcd(IO_PER, T_IN) codes a cycle (T_IN = 16 here). w16a32's 32-bit act: 33 x 3 takes
    ceil(33 / 27) = 2 DSP48E2, 37 x 3 also 2: 6 a code, HEAD_G = gcd(8, 16) = 8 codes: 48 an
    instance, 96 in all; int8's 9 and 13 bits: one each, 3 a code, HEAD_G = gcd(32, 16) = 16: 48 an
    instance, 96. BRAM/URAM unchanged (the heads borrow the backbone's buffers)."""
    for hw, add in ((W16, 96), (get_hw("int8"), 96)):
        host, acc = perf(TINY, hw, "zcu104"), perf(TINY, hw, "zcu104", heads_on_accel=True)
        assert acc["dsp"] - host["dsp"] == add and acc["resources"]["heads"]["dsp"] == add
        assert (acc["bram36"], acc["uram"]) == (host["bram36"], host["uram"])


def test_heads_on_a_design_without_on_chip_maps_or_without_a_fitting_band_are_refused():
    with pytest.raises(ValueError, match="heads run only in our top"):
        perf(TINY, W16, "zcu102", "edge-moe", heads_on_accel=True)
    # a 64 x 256 image: 65 tokens, so one 128-pixel row of the last 3x3 conv exceeds MAX_ROWS
    m = PerfModel(replace(TINY, img_size=(64, 256)), W16, Design(heads_on_accel=True), BOARDS["zcu104"])
    with pytest.raises(ValueError, match="do not fit the kernels' on-chip buffers"):
        m.report()


def test_perf_cli_heads_accelerator_reports_every_task_and_refuses_a_mismatched_export(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "perf", "m3vit-tiny", "--heads", "accelerator",
                        "--json", "--out", str(tmp_path / "p")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["heads"] == "accelerator" and set(d["per_task"]) == {"semseg", "depth"}
    worst = max(v["end_to_end_ms"] for v in d["per_task"].values())
    assert d["latency_largest_ms"] == pytest.approx(worst) and d["latency_ms"] == pytest.approx(worst)
    md = (tmp_path / "p" / "perf.md").read_text()
    assert "| semseg |" in md and "end to end" in md and "modeled" in md
    ex = _fake_export(tmp_path, {"t_in": 16, "t_out": 16, "attn_p": 4, "axi_bits": 256})
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "perf", ex, "--heads", "accelerator"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "exported with the heads on the host" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "perf", "m3vit-tiny", "--board", "zcu102",
                        "--design", "edge-moe", "--heads", "accelerator"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "heads run only in our top" in r.stderr


def test_perf_of_an_export_with_heads_models_its_heads(tmp_path):
    kp = {"t_in": 16, "t_out": 16, "attn_p": 4, "axi_bits": 256, "heads_on_accel": True}
    r = perf_of_export(_fake_export(tmp_path, kp))
    assert r["heads"] == "accelerator"
    assert r["latency_ms"] == pytest.approx(perf(TINY, W16, "zcu104", heads_on_accel=True)["latency_ms"])


def test_m3vit_tiny_head_macs_by_hand():
    """The semseg head of m3vit-tiny (pup, 64 channels, classifier at half resolution) as MACs: the
    four 3x3 convs at 8x16, 16x32, 32x64, 64x128 (9 x 192 x 64, then 9 x 64 x 64 per pixel) and the
    1x1 classifier 64 -> 40 at 64x128: 128 x 110,592 + 512 x 36,864 + 2048 x 36,864 + 8192 x 36,864
    + 8192 x 2,560 = 431,489,024 (the upsampling is no MAC of the network's)."""
    m = PerfModel(TINY, W16, Design(heads_on_accel=True), BOARDS["zcu104"])
    macs = sum(m.head_step_cost(s, 0)["macs"] for s in m.program() if s.kind == "head")
    assert macs == 128 * 110_592 + 512 * 36_864 + 2048 * 36_864 + 8192 * 36_864 + 8192 * 2_560 == 431_489_024

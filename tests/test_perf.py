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

"""axi_rd_arbiter.sv under Verilator + cocotb: three cocotbext-axi read masters, one AxiRam behind the
merged port, both throttled at random.

What the bench checks (and reports as counts, 0 expected):

- data: every master's bursts return exactly the bytes at their addresses (``mismatches``, bytes);
- AXI on the merged address channel: once ARVALID is high it stays high with the same payload until
  ARREADY (``ar_violations``, cycles), which a grant that moves while the slave stalls breaks;
- round robin: while a master waits with ARVALID, at most N - 1 = 2 other grants pass it
  (``max_passed``).

A deliberate defect is caught: the pytest side also builds copies of the arbiter with one line
changed (the grant not locked during a stall, read data routed by the wrong ID bits, the pointer never
advancing) and asserts that the same bench fails each on the check named.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import pytest
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb_util import sim_timeout

HERE = Path(__file__).resolve().parent
N_MASTERS = 3  # the tb's named ports (axi_rd_arbiter_tb.sv)
STREAMS = 4  # concurrent read streams per master: several bursts outstanding, so requests contend
BURSTS = 40  # per master (half saturated, half sparse)


@cocotb.test(**sim_timeout(60.0))
async def three_masters_share_one_port(dut):
    from cocotb.clock import Clock
    from cocotbext.axi import AxiReadBus
    from cocotbext.axi.axi_master import AxiMasterRead
    from cocotbext.axi.axi_ram import AxiRamRead

    rng = random.Random(int(os.environ.get("MTL_MOE_SEED", "1")))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    mem_bytes = 1 << 20
    ram = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=mem_bytes)
    image = bytes(rng.getrandbits(8) for _ in range(mem_bytes))
    ram.write(0, image)
    ram.ar_channel.set_pause_generator(iter(lambda: rng.random() < 0.6, None))  # ARREADY stalls
    ram.r_channel.set_pause_generator(iter(lambda: rng.random() < 0.3, None))
    masters = [AxiMasterRead(AxiReadBus.from_prefix(dut, f"s{i}_axi"), dut.clk, dut.rst)
               for i in range(N_MASTERS)]
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    beat = int(os.environ.get("AXI_BITS", "256")) // 8
    stats = {"mismatches": 0, "ar_violations": 0, "max_passed": 0, "grants": [0] * N_MASTERS, "bursts": 0,
             "stall_cycles": 0, "arrivals_in_stall": 0}

    async def monitor():
        prev = None  # (valid, payload) of a request left waiting in the previous cycle
        passed = [0] * N_MASTERS  # grants given to others while master i waits
        n_prev = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            valid, ready = int(dut.m_axi_ARVALID.value), int(dut.m_axi_ARREADY.value)
            payload = tuple(int(getattr(dut, f"m_axi_{s}").value) for s in ("ARID", "ARADDR", "ARLEN"))
            if prev is not None and (not valid or payload != prev):
                stats["ar_violations"] += 1
            reqs = [int(getattr(dut, f"s{i}_axi_ARVALID").value) for i in range(N_MASTERS)]
            if prev is not None and sum(reqs) > n_prev:
                stats["arrivals_in_stall"] += 1  # a request arrived while another waited
            stats["stall_cycles"] += valid and not ready
            prev = payload if valid and not ready else None
            n_prev = sum(reqs)
            if valid and ready:
                g = payload[0] >> 1  # {index, master's 1-bit ID}
                stats["grants"][g] += 1
                for i in range(N_MASTERS):
                    waiting = int(getattr(dut, f"s{i}_axi_ARVALID").value)
                    passed[i] = 0 if i == g else passed[i] + waiting
                    if not waiting:
                        passed[i] = 0
                stats["max_passed"] = max(stats["max_passed"], max(passed))

    async def traffic(i: int, n: int, gap: int):
        for _ in range(n):
            if gap:
                await ClockCycles(dut.clk, rng.randrange(1, gap))
            beats = rng.choice((1, 2, 4, 16))
            addr = rng.randrange(0, mem_bytes // 4096) * 4096 + rng.randrange(0, 4096 // (beats * beat)) \
                * beats * beat  # aligned, never crossing 4 KiB
            got = await masters[i].read(addr, beats * beat)
            stats["mismatches"] += sum(a != b for a, b in zip(got.data, image[addr: addr + beats * beat],
                                                              strict=True))
            stats["bursts"] += 1

    async def phases():
        # saturated: STREAMS concurrent streams a master, back to back (the port is always contended:
        # round robin must share it); then sparse: one stream a master with random idle gaps, so
        # requests arrive while another waits in a stall (a grant that is not locked moves then)
        for streams, gap in ((STREAMS, 0), (1, 30)):
            jobs = [cocotb.start_soon(traffic(i, BURSTS // 2 // streams, gap))
                    for i in range(N_MASTERS) for _ in range(streams)]
            for j in jobs:
                await j

    cocotb.start_soon(monitor())
    jobs = [cocotb.start_soon(phases())]
    try:
        for j in jobs:
            await j
    finally:  # also when a lost burst leaves a master waiting until the time bound
        Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(stats))
    assert stats["mismatches"] == 0, stats
    assert stats["ar_violations"] == 0, stats
    assert stats["max_passed"] <= N_MASTERS - 1, stats
    assert stats["bursts"] == N_MASTERS * BURSTS, stats


# one line of axi_rd_arbiter.sv replaced, and what the bench must then report
MUTANTS = {
    "grant_not_locked": ("assign sel = locked ? lock_g : pick;", "assign sel = pick;",
                         lambda r: r["ar_violations"] > 0),
    # beats reach the wrong master: wrong bytes, or bursts never completed
    "data_by_wrong_id_bits": ("wire [IW-1:0] rsel = m_RID[OID_W-1 -: IW];",
                              "wire [IW-1:0] rsel = m_RID[IW-1:0];",
                              lambda r: not r or r["mismatches"] > 0 or r["bursts"] < N_MASTERS * BURSTS),
    "pointer_never_moves": ("ptr <= 32'(sel) == N - 1 ? '0 : sel + 1'b1;", "ptr <= ptr;",
                            lambda r: r["max_passed"] > N_MASTERS - 1),
}


def _run(tmp_path: Path, source: str) -> tuple[dict, bool]:
    """Build the tb with this arbiter source (in tmp_path) and run the bench: (report, passed)."""
    from cocotb_tools.runner import get_results, get_runner
    from cocotb_util import build_lock, cached_build

    src = tmp_path / "axi_rd_arbiter.sv"
    src.write_text(source)
    tb = HERE / "rtl" / "axi_rd_arbiter_tb.sv"
    build_dir, _ = cached_build("axi_rd_arbiter_tb", {}, [tb, src], [])
    runner = get_runner("verilator")
    with build_lock(build_dir):
        runner.build(sources=[tb, src], hdl_toplevel="axi_rd_arbiter_tb", build_dir=build_dir)
    rep = tmp_path / "report.json"
    try:
        results = runner.test(hdl_toplevel="axi_rd_arbiter_tb", test_module="test_axi_rd_arbiter",
                              test_dir=HERE, build_dir=build_dir, results_xml=str(tmp_path / "results.xml"),
                              extra_env={"MTL_MOE_REPORT": str(rep)})
        ok = get_results(results)[1] == 0
    except SystemExit:  # the simulator stopped on a failure inside a cocotbext-axi model
        ok = False
    return json.loads(rep.read_text()) if rep.exists() else {}, ok


def test_arbiter_merges_three_masters(verilator, tmp_path):
    rep, ok = _run(tmp_path, (HERE / "rtl" / "axi_rd_arbiter.sv").read_text())
    (tmp_path / "arbiter.json").write_text(json.dumps(rep))
    assert ok, rep
    assert rep["mismatches"] == 0 and rep["ar_violations"] == 0 and rep["max_passed"] <= N_MASTERS - 1, rep
    assert rep["grants"] == [BURSTS] * N_MASTERS, rep


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_arbiter_bench_catches_a_defect(verilator, tmp_path, mutant):
    old, new, check = MUTANTS[mutant]
    source = (HERE / "rtl" / "axi_rd_arbiter.sv").read_text()
    assert source.count(old) == 1, f"the line to mutate is not in axi_rd_arbiter.sv: {old}"
    rep, ok = _run(tmp_path, source.replace(old, new))
    assert not ok and check(rep), f"the bench passed an arbiter with {mutant}: {rep}"

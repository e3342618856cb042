// The expert_combine step of the layer program (kernels.h `moe`'s combine loop, golden `moe`):
// for each row r of an expert's queue (token q_token, slot q_slot, gate q_gate, from accel_router's
// queues) and each word w of the expert's W2 output row, sum[token][w] += rq(y * gate) per lane
// (golden `mul` to act: the product's one rounding, range-checked as act), the sums exact in SUMW
// bits (kernels.h MOE_SUM_W, mtl_moe.onchip.kernel_widths "moe_sum"). One word a cycle, two stages
// (read y and the queue entry; read-modify-write the sum); done the cycle after the last write.
// Cycles start -> done: rows x words + 2 (mtl_moe.perf step_cost "expert_combine").
// `clear` (at the router step: a new MoE block) empties every sum in one cycle (a valid bit per
// word: an unwritten sum reads 0, golden's np.zeros). The block's output (golden `moe`'s final
// act.fit) is read combinationally through rd_addr: SAT clamps, WRAP wraps and flags rd_ovf.
module accel_combine #(
    parameter int W = 32,             // act width (signed), rounding, overflow
    parameter int A_ROUND = 0,
    parameter int A_SAT = 0,
    parameter int GW = 18,            // gate (unsigned), fractional bits
    parameter int GF = 17,
    parameter int SUMW = 34,          // the exact gated sum
    parameter int LANES = 16,         // T_IN
    parameter int D = 64,             // n_embd
    parameter int ROWS_MAX = 65,      // tokens
    parameter int TW = 16             // token index width (accel_router's q_token)
) (
    input  logic clk,
    input  logic rst,
    input  logic clear,
    input  logic start,
    input  logic [15:0] rows,         // the queue's length
    output logic done,
    // the queue entry of row q_index (accel_router.sv, combinational)
    output logic [15:0] q_index,
    input  logic [TW-1:0] q_token,
    input  logic [GW-1:0] q_gate,
    // the expert's W2 output rows (rows x DW words of LANES act codes) in the caller's feature-map
    // buffer: the word address read this cycle, its word the next (a registered read)
    output logic [31:0] y_raddr,
    input  logic [LANES*W-1:0] y_rdata,
    // the block's output, word a of token a / DW
    input  logic [$clog2(ROWS_MAX*((D+LANES-1)/LANES))-1:0] rd_addr,
    output logic [LANES*W-1:0] rd_y,
    output logic [LANES-1:0] rd_ovf,
    output logic ovf                  // a gated product left act (WRAP) in this step
);
    localparam int DW = (D + LANES - 1) / LANES;
    localparam int NW = ROWS_MAX * DW;
    localparam int YA = $clog2(NW);
    localparam int PW = W + GW + 1;                 // the signed product y * gate
    localparam int SH = GF;                         // (F + GF) -> F fractional bits
    localparam longint AMAX = (64'sd1 <<< (W - 1)) - 1, AMIN = -(64'sd1 <<< (W - 1));

    logic [LANES*SUMW-1:0] smem [NW];
    logic [NW-1:0] sval;

    // golden requantize(y * g, F + GF, act): shift by GF with act's rounding, then act's range
    function automatic logic [W:0] gated(input logic [W-1:0] y, input logic [GW-1:0] g);
        logic signed [PW-1:0] p, q;
        logic rb, stk, up, big;
        p = PW'($signed(y)) * $signed({1'b0, g});
        q = p >>> SH;
        rb = p[SH-1];
        stk = |(p & ((PW'(1) << (SH - 1)) - PW'(1)));
        up = (A_ROUND == 1) ? rb : (A_ROUND == 2) ? (rb & (stk | q[0])) : 1'b0;
        q = q + PW'(up);
        big = q > PW'(AMAX) || q < PW'(AMIN);
        if (big && A_SAT != 0) q = q > PW'(AMAX) ? PW'(AMAX) : PW'(AMIN);
        return {big && A_SAT == 0, W'(q)};
    endfunction

    logic running, v1;
    logic [15:0] w, total;
    logic [15:0] tok1, w1;
    logic [GW-1:0] g1;
    logic [LANES*W-1:0] y1;
    assign y1 = y_rdata;
    logic [31:0] i;
    assign y_raddr = i;
    logic last1;
    always_ff @(posedge clk) begin
        done <= 1'b0;
        v1 <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            sval <= '0;
        end else begin
            if (clear) sval <= '0;
            if (start) begin
                ovf <= 1'b0;
                running <= rows != 0;
                done <= rows == 0;
                i <= '0;
                q_index <= '0;
                w <= '0;
                total <= rows;
            end else if (running) begin   // stage 1: the queue entry, the y word
                tok1 <= 16'(q_token);
                g1 <= q_gate;
                w1 <= w;
                v1 <= 1'b1;
                last1 <= q_index == total - 1 && 32'(w) == DW - 1;
                i <= i + 1;
                if (32'(w) == DW - 1) begin
                    w <= '0;
                    q_index <= q_index + 1;
                    if (q_index == total - 1) running <= 1'b0;
                end else w <= w + 1;
            end
            if (v1) begin                 // stage 2: sum += gated y, lane by lane
                logic [LANES*SUMW-1:0] s;
                logic [YA-1:0] a;
                a = YA'(32'(tok1) * DW + 32'(w1));
                s = sval[a] ? smem[a] : '0;
                for (int l = 0; l < LANES; l++) begin
                    logic [W:0] gy;
                    gy = gated(y1[l*W +: W], g1);
                    if (32'(w1) * LANES + l < D) begin
                        s[l*SUMW +: SUMW] = s[l*SUMW +: SUMW] + SUMW'($signed(gy[W-1:0]));
                        if (gy[W]) ovf <= 1'b1;
                    end
                end
                smem[a] <= s;
                sval[a] <= 1'b1;
                if (last1) done <= 1'b1;
            end
        end
    end

    // the block's output: act.fit of each sum (kernels.h's final pass over the sums)
    always_comb begin
        for (int l = 0; l < LANES; l++) begin
            logic signed [SUMW-1:0] s;
            logic big;
            s = sval[rd_addr] ? $signed(smem[rd_addr][l*SUMW +: SUMW]) : '0;
            big = longint'(s) > AMAX || longint'(s) < AMIN;
            rd_ovf[l] = big && A_SAT == 0;
            rd_y[l*W +: W] = (big && A_SAT != 0) ? (s > 0 ? W'(AMAX) : W'(AMIN)) : W'(s);
        end
    end
endmodule

// One bilinear pass of the task heads (kernels.h head_upsample<LFH, LFW>, golden upsample /
// _upsample_axis: align_corners=False, power-of-two factors, exact): a (c, h, w) pixel-major map
// in DDR at src -> (c, H, W) = (c, h 2^LFH, w 2^LFW) at dst, pixel-major (a scratch map) or
// channel-major (to_pred: the prediction), DDR -> DDR over the io port.
//
// Per output row Y (kernels.h's loop, what mtl_moe/perf.py head_step_cost "head_upsample" counts):
//   1. its source rows y0, y1 = head_up_src(Y) (weight ly of y1, units 2^-(LFH+1)) through the row
//      reader (accel_hrd, one call a row: a first-beat latency each) into two row buffers, fm words
//      pixel-major (x * CW + q). kernels.h borrows QKV and F for them; here they are fm-style ports
//      (r0_*, r1_*: port 1 reads, port 2 reads or writes, data the cycle after the address, as
//      fm_ram.sv), so the sequencer can point them at those banks;
//   2. the output loop through the row writer (accel_hwr): its step (st_x = X, st_q = source word q,
//      st_lane) addresses the words at x0 and x1 = head_up_src(X) of both rows (the two ports of
//      each buffer), and the next cycle G lanes of the step's word are computed, the exact sum
//      sum_{a,b} x[a][b] wy[a] wx[b] with 3 multipliers a code (wx0 a + lx b = (a << (LFW+1)) +
//      lx (b - a) for each row, then the same along y), one rounding of its LFH + LFW + 2 extra
//      fractional bits to act (shift_round, fx_round.svh: kernels.h requant<act_t, F + EX>), and
//      answered as the writer's fm_rdata: pixel-major G codes a step (an AXI beat every IO_PER / G
//      steps), the prediction a code a step (its channel's lane) on the same multipliers;
//   3. the writer's last response, then the next row (a call starts in the cycle the one before
//      reports done, but the writer one cycle after the reader's done: its first step reads row 1's
//      last word).
// The calls are one after another as in kernels.h (heads() has no DATAFLOW): the next rows are not
// read ahead, so each row pays two read latencies and the write's response, as the model counts.
module accel_hup #(
    parameter int AXI_BITS = 256,
    parameter int SB = 32,            // storage bits of one act code in DDR (8 * OUT_BYTES)
    parameter int WA = 32,            // act width
    parameter int T_IN = 16,
    parameter int G = 8,              // codes a step: gcd(IO_PER, T_IN)
    parameter int BURST = 128,
    parameter int RD_OUTSTANDING = 2,
    parameter int WR_OUTSTANDING = 2,
    parameter int FA = 10,            // row-buffer address bits
    parameter int LFH = 1,            // x 2^LFH rows
    parameter int LFW = 1,            // x 2^LFW columns
    parameter int A_ROUND = 0         // act rounding: 0 TRN, 1 RND, 2 RND_CONV
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic to_pred,
    input  logic [15:0] c,
    input  logic [15:0] h,            // source rows
    input  logic [15:0] w,            // source pixels a row
    input  logic [63:0] src,          // byte address of the source map
    input  logic [63:0] dst,          // byte address of the output map / the prediction
    output logic busy,
    output logic done,
    output logic rd_error,
    output logic wr_error,
    // row buffer 0 (source row y0) and 1 (y1): port 1 reads, port 2 reads or writes
    output logic [FA-1:0] r0_addr1,
    input  logic [T_IN*WA-1:0] r0_q1,
    output logic [FA-1:0] r0_addr2,
    output logic r0_we,
    output logic [T_IN-1:0] r0_strb,
    output logic [T_IN*WA-1:0] r0_d,
    input  logic [T_IN*WA-1:0] r0_q2,
    output logic [FA-1:0] r1_addr1,
    input  logic [T_IN*WA-1:0] r1_q1,
    output logic [FA-1:0] r1_addr2,
    output logic r1_we,
    output logic [T_IN-1:0] r1_strb,
    output logic [T_IN*WA-1:0] r1_d,
    input  logic [T_IN*WA-1:0] r1_q2,
    // AXI4 read master (the io port's read side: the row reader)
    output logic [0:0] m_axi_ARID,
    output logic [63:0] m_axi_ARADDR,
    output logic [7:0] m_axi_ARLEN,
    output logic [2:0] m_axi_ARSIZE,
    output logic [1:0] m_axi_ARBURST,
    output logic m_axi_ARVALID,
    input  logic m_axi_ARREADY,
    input  logic [0:0] m_axi_RID,
    input  logic m_axi_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_RDATA,
    input  logic [1:0] m_axi_RRESP,
    input  logic m_axi_RVALID,
    output logic m_axi_RREADY,
    // AXI4 write master (its write side: the row writer)
    output logic [0:0] m_axi_AWID,
    output logic [63:0] m_axi_AWADDR,
    output logic [7:0] m_axi_AWLEN,
    output logic [2:0] m_axi_AWSIZE,
    output logic [1:0] m_axi_AWBURST,
    output logic m_axi_AWVALID,
    input  logic m_axi_AWREADY,
    output logic [AXI_BITS-1:0] m_axi_WDATA,
    output logic [AXI_BITS/8-1:0] m_axi_WSTRB,
    output logic m_axi_WLAST,
    output logic m_axi_WVALID,
    input  logic m_axi_WREADY,
    input  logic [0:0] m_axi_BID,
    input  logic [1:0] m_axi_BRESP,
    input  logic m_axi_BVALID,
    output logic m_axi_BREADY
);
`include "fx_round.svh"
    localparam int EX = LFH + LFW + 2;              // extra fractional bits of the exact sum

    typedef enum logic [1:0] {IDLE, RD0, RD1, WR} state_t;
    state_t st;
    logic pred;
    logic [15:0] cr, hr, wr, yy;                    // the call's sizes; the output row Y
    logic [63:0] srcr, dstr;
    wire [15:0] c_ = start ? c : cr, h_ = start ? h : hr, w_ = start ? w : wr;
    wire [31:0] cw = (32'(c_) + T_IN - 1) / T_IN;
    wire [31:0] hh = 32'(h_) << LFH;
    wire [15:0] ww = w_ << LFW;

    // source index i0, i1 and weight lam (of i1, units 2^-(LF+1)) of output i of an axis of n
    function automatic logic [47:0] up_src(input logic [31:0] i, input logic [31:0] nsrc, input int lf);
        logic signed [31:0] s;
        logic [15:0] i0, i1, lam;
        s = $signed(2 * i + 1) - $signed(32'd1 << lf);
        if (s < 0) s = 0;
        i0 = 16'(s >>> (lf + 1));
        lam = 16'(s - (32'(i0) <<< (lf + 1)));
        i1 = 32'(i0) + 1 < nsrc ? i0 + 1'b1 : 16'(nsrc - 1);
        return {i0, i1, lam};
    endfunction

    // ---- the calls ----
    logic hrd_done, hwr_done;
    wire last_row = 32'(yy) + 1 == hh;
    wire [15:0] y_next = start ? 16'd0 : st == WR ? yy + 1'b1 : yy;
    /* verilator lint_off UNUSEDSIGNAL */  // (i0, i1, lam): the start takes i0, the row's call i1
    wire [47:0] ysrc_next = up_src(32'(y_next), 32'(h_), LFH);  // row y_next's sources
    wire [47:0] ysrc = up_src(32'(yy), 32'(h_), LFH);
    /* verilator lint_on UNUSEDSIGNAL */
    wire hrd_start = start || (st == RD0 && hrd_done) || (st == WR && hwr_done && !last_row);
    wire [15:0] hrd_y = st == RD0 ? ysrc[31:16] : ysrc_next[47:32];
    // the writer's first step reads the rows in its start cycle: one cycle after row 1's last word is
    // written (the read would see the old word, and port 2 is still the reader's then)
    logic hwr_start;
    always_ff @(posedge clk) hwr_start <= !rst && !start && st == RD1 && hrd_done;
    assign done = st == WR && hwr_done && last_row;
    assign busy = st != IDLE;

    always_ff @(posedge clk) begin
        if (rst) st <= IDLE;
        else if (start) begin
            st <= RD0;
            {pred, cr, hr, wr, yy, srcr, dstr} <= {to_pred, c, h, w, 16'd0, src, dst};
        end else case (st)
            RD0: if (hrd_done) st <= RD1;
            RD1: if (hrd_done) st <= WR;          // the writer starts in WR's first cycle
            WR: if (hwr_done) begin
                st <= last_row ? IDLE : RD0;
                yy <= yy + 1'b1;
            end
            default: ;
        endcase
    end

    logic hrd_we;
    logic [FA-1:0] hrd_waddr;
    logic [T_IN-1:0] hrd_wstrb;
    logic [T_IN*WA-1:0] hrd_wdata;
    /* verilator lint_off UNUSEDSIGNAL */
    logic hrd_busy, hwr_busy;
    logic [15:0] st_x, st_q, st_lane;
    /* verilator lint_on UNUSEDSIGNAL */
    accel_hrd #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                .OUTSTANDING(RD_OUTSTANDING), .FA(FA)) rd (
        .clk, .rst, .start(hrd_start), .c(c_), .h(h_), .w(w_), .y0(hrd_y), .n(16'd1),
        .base(start ? src : srcr), .busy(hrd_busy), .done(hrd_done), .rd_error,
        .m_axi_ARID, .m_axi_ARADDR, .m_axi_ARLEN, .m_axi_ARSIZE, .m_axi_ARBURST, .m_axi_ARVALID,
        .m_axi_ARREADY, .m_axi_RID, .m_axi_RLAST, .m_axi_RDATA, .m_axi_RRESP, .m_axi_RVALID, .m_axi_RREADY,
        .fm_we(hrd_we), .fm_waddr(hrd_waddr), .fm_wstrb(hrd_wstrb), .fm_wdata(hrd_wdata));

    // ---- the output loop's words: x0, x1 of both rows (stage 1), the sums (stage 2) ----
    logic fm_re;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [FA-1:0] fm_raddr;                         // the writer's own address: not used, st_x / st_q are
    /* verilator lint_on UNUSEDSIGNAL */
    wire [47:0] xsrc = up_src(32'(st_x), 32'(wr), LFW);
    wire [FA-1:0] a0 = FA'(32'(xsrc[47:32]) * cw + 32'(st_q)), a1 = FA'(32'(xsrc[31:16]) * cw + 32'(st_q));
    assign r0_addr1 = a0;
    assign r1_addr1 = a0;
    assign r0_addr2 = st == WR ? a1 : hrd_waddr;
    assign r1_addr2 = st == WR ? a1 : hrd_waddr;
    assign r0_we = st == RD0 && hrd_we;
    assign r1_we = st == RD1 && hrd_we;
    assign {r0_strb, r1_strb} = {hrd_wstrb, hrd_wstrb};
    assign {r0_d, r1_d} = {hrd_wdata, hrd_wdata};
    logic [15:0] lx, ly, e0;                         // stage 2: the weights, the step's first lane
    always_ff @(posedge clk) begin
        if (fm_re) begin
            lx <= xsrc[15:0];
            e0 <= st_lane - st_lane % 16'(G);
        end
        ly <= ysrc[15:0];
    end
    logic [T_IN*WA-1:0] sums;
    always_comb begin
        sums = '0;
        for (int l = 0; l < G; l++) begin
            longint a00, a01, a10, a11, rr0, rr1, s;
            a00 = longint'($signed(r0_q1[(32'(e0) + l) * WA +: WA]));
            a01 = longint'($signed(r0_q2[(32'(e0) + l) * WA +: WA]));
            a10 = longint'($signed(r1_q1[(32'(e0) + l) * WA +: WA]));
            a11 = longint'($signed(r1_q2[(32'(e0) + l) * WA +: WA]));
            rr0 = (a00 <<< (LFW + 1)) + (a01 - a00) * longint'(lx);
            rr1 = (a10 <<< (LFW + 1)) + (a11 - a10) * longint'(lx);
            s = (rr0 <<< (LFH + 1)) + (rr1 - rr0) * longint'(ly);
            sums[(32'(e0) + l) * WA +: WA] = WA'(shift_round(s, EX, A_ROUND));
        end
    end

    accel_hwr #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                .OUTSTANDING(WR_OUTSTANDING), .FA(FA)) wrt (
        .clk, .rst, .start(hwr_start), .to_pred(pred), .relu(1'b0), .fresh(1'b1), .c(cr), .h(16'(hh)), .w(ww),
        .y0(yy), .n(16'd1), .first(16'd0), .sw(16'(cw)), .base(dstr), .busy(hwr_busy), .done(hwr_done),
        .wr_error, .fm_re, .fm_raddr, .fm_rdata(sums), .st_x, .st_q, .st_lane,
        .m_axi_AWID, .m_axi_AWADDR, .m_axi_AWLEN, .m_axi_AWSIZE, .m_axi_AWBURST, .m_axi_AWVALID,
        .m_axi_AWREADY, .m_axi_WDATA, .m_axi_WSTRB, .m_axi_WLAST, .m_axi_WVALID, .m_axi_WREADY, .m_axi_BID,
        .m_axi_BRESP, .m_axi_BVALID, .m_axi_BREADY);
endmodule

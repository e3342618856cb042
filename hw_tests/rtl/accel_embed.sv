`include "fx_round.svh"
// The embed step of the layer program (kernels.h embed, golden's cls/pos add): the token rows X of
// the residual stream from the patch embeddings F (on chip) and the class token and position
// embedding (weights.bin, over an AXI4 read master):
//
//   X[0]     = rq(rq_act(cls) + pos[0])       X[1 + r] = rq(F[r] + pos[1 + r])
//
// exactly as golden: cls (bias type, FB fractional bits) rounded onto the act grid first (act
// rounding, SAT clamps / WRAP flags `ovf`), then each sum taken exactly on the finer grid
// FE = max(FA_ACT, FB) and rounded once onto the act grid (act rounding and overflow).
// weights.bin holds cls as one row and pos as T rows of D bias codes (BSB storage bits, the low BW
// bits signed), each row padded to whole AXI words (hls_export's row_bytes): RB beats a row, pos
// row t at pos_addr + t * RB beats. Feature maps through the fm ports (docs: notes/fm.md): F row r
// word w at r * DW + w (fm read port, latency 1), X row t word w at t * DW + w (fm write port).
//
// Schedule (what mtl_moe/perf.py's step_cost "embed" counts):
//   - AR: the cls row, then the T pos rows as one run, in INCR bursts of up to BURST beats split
//     at 4 KiB boundaries, requested back to back (the first-beat latency is paid once);
//   - R: cls into its row buffer, pos rows into a ping-pong pair of row buffers (RREADY while the
//     row being filled has a free buffer), one beat a cycle;
//   - emit: once cls and pos row t are in, the DW words of X row t, one a cycle: cycle 1 addresses
//     F word (t-1)*DW + w (t > 0; fm_re/fm_raddr combinational, the data come the next cycle) and
//     latches the pos codes, cycle 2 adds, rounds and writes X.
// With RB beats of the memory slower than DW words of emit (the demo: 8 beats at 2 cycles vs 4
// words) the R stream sets the pace: start -> done = latency + the beats' arrival + the last row's
// DW words + the pipeline's cycles.
module accel_embed #(
    parameter int AXI_BITS = 256,
    parameter int T_IN = 16,
    parameter int T = 65,             // tokens (the class token + the patches)
    parameter int D = 64,
    parameter int WA = 32,            // act width (signed) and its fractional bits, rounding, overflow
    parameter int FA_ACT = 22,
    parameter int A_ROUND = 0,
    parameter int A_SAT = 0,          // 1 saturate; 0 wrap and flag ovf
    parameter int BSB = 32,           // bias storage bits of one weights.bin code, BW <= BSB
    parameter int BW = 32,
    parameter int FB = 22,            // bias fractional bits
    parameter int FA = 9,            // feature-map address bits
    parameter int BURST = 128         // beats of one burst at most (mtl_moe.perf.io_burst_beats)
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [63:0] cls_addr,     // byte addresses in weights.bin's buffer, AXI_BITS/8-aligned
    input  logic [63:0] pos_addr,
    output logic busy,
    output logic done,
    output logic rd_error,            // a read came back with an error response (sticky until start)
    output logic ovf,                 // a WRAP act overflowed (sticky until start; golden raises)
    // AXI4 read master (weights.bin)
    output logic [0:0] m_axi_e_ARID,
    output logic [63:0] m_axi_e_ARADDR,
    output logic [7:0] m_axi_e_ARLEN,
    output logic [2:0] m_axi_e_ARSIZE,
    output logic [1:0] m_axi_e_ARBURST,
    output logic m_axi_e_ARVALID,
    input  logic m_axi_e_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID; the burst lengths are the unit's own counts
    input  logic [0:0] m_axi_e_RID,
    input  logic m_axi_e_RLAST,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [AXI_BITS-1:0] m_axi_e_RDATA,
    input  logic [1:0] m_axi_e_RRESP,
    input  logic m_axi_e_RVALID,
    output logic m_axi_e_RREADY,
    // feature-map read port (F) and write port (X)
    output logic fm_re,
    output logic [FA-1:0] fm_raddr,
    input  logic [T_IN*WA-1:0] fm_rdata,
    output logic fm_we,
    output logic [FA-1:0] fm_waddr,
    output logic [T_IN-1:0] fm_wstrb,
    output logic [T_IN*WA-1:0] fm_wdata
);
    localparam int DW = (D + T_IN - 1) / T_IN;   // words of a feature row
    localparam int VPB = AXI_BITS / BSB;          // bias codes in one beat
    localparam int RB = (D + VPB - 1) / VPB;      // beats of one stored row
    localparam int BYTES = AXI_BITS / 8;
    localparam int FE = FA_ACT > FB ? FA_ACT : FB;
    localparam longint MAXC = (64'sd1 <<< (WA - 1)) - 1, MINC = -(64'sd1 <<< (WA - 1));
    localparam int TB = $clog2(T + 1);
    initial begin
        if (AXI_BITS % BSB != 0 || BW > BSB) $error("accel_embed: a beat must hold whole bias codes");
        if (T * DW > (1 << FA)) $error("accel_embed: FA = %0d address bits cannot hold %0d words", FA, T * DW);
        if (WA + FE - FA_ACT > 62 || BW + FE - FB > 62) $error("accel_embed: the sum's grid exceeds 64 bits");
    end

    // act fit of a value on the act grid: SAT clamps, WRAP keeps the low WA bits (and flags)
    function automatic longint fit_act(input longint v);
        fit_act = (A_SAT != 0 && v > MAXC) ? MAXC : (A_SAT != 0 && v < MINC) ? MINC : v;
    endfunction
    function automatic logic out_of_act(input longint v);
        out_of_act = A_SAT == 0 && (v > MAXC || v < MINC);
    endfunction

    // ---- AR: region 0 the cls row, region 1 the pos rows ----
    logic running, region;
    logic [63:0] ar_next;
    logic [31:0] ar_left;                         // beats of the region not yet requested
    logic [31:0] ar_len, to_4k;
    always_comb begin
        to_4k = 32'((64'd4096 - (ar_next & 64'hfff)) / BYTES);
        ar_len = ar_left;
        if (ar_len > BURST) ar_len = BURST;
        if (ar_len > to_4k) ar_len = to_4k;
    end
    assign m_axi_e_ARID = '0;
    assign m_axi_e_ARADDR = ar_next;
    assign m_axi_e_ARLEN = 8'(ar_len - 1);
    assign m_axi_e_ARSIZE = 3'($clog2(BYTES));
    assign m_axi_e_ARBURST = 2'b01;               // INCR
    assign m_axi_e_ARVALID = running && ar_left != 0;

    // ---- R: cls, then pos rows into the ping-pong row buffers ----
    logic [BW-1:0] cls_buf [RB * VPB];
    logic [BW-1:0] pos_buf [2][RB * VPB];
    logic cls_in;                                 // the cls row is complete
    logic [TB-1:0] rows_in, rows_out;             // pos rows complete / X rows emitted
    logic [$clog2(RB + 1)-1:0] rbeat;             // beat within the row being received
    assign m_axi_e_RREADY = running && (!cls_in || (int'(rows_in) < T && rows_in - rows_out < 2));
    wire rx = m_axi_e_RVALID && m_axi_e_RREADY;

    // ---- emit: row e = rows_out, word w; stage 2 registers ----
    logic [$clog2(DW + 1)-1:0] w;
    wire issue = running && cls_in && rows_out < rows_in;
    // the F word of this issue: addressed in its cycle, its data the next (the stage-2 cycle)
    assign fm_re = issue && rows_out != 0;
    assign fm_raddr = FA'((int'(rows_out) - 1) * DW + int'(w));
    logic v2, first2;
    logic [FA-1:0] a2;
    logic [BW-1:0] p2 [T_IN];
    logic [T_IN*WA-1:0] c2;                       // the cls row's act codes for word w (row 0)
    logic [T_IN-1:0] m2;                          // lanes d < D (the others are written 0)
    logic last2;

    always_ff @(posedge clk) begin
        done <= 1'b0;
        fm_we <= 1'b0;
        v2 <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            busy <= 1'b0;
            rd_error <= 1'b0;
            ovf <= 1'b0;
        end else if (start) begin
            running <= 1'b1;
            busy <= 1'b1;
            rd_error <= 1'b0;
            ovf <= 1'b0;
            region <= 1'b0;
            ar_next <= cls_addr;
            ar_left <= RB;
            cls_in <= 1'b0;
            rows_in <= '0;
            rows_out <= '0;
            rbeat <= '0;
            w <= '0;
        end else if (running) begin
            if (m_axi_e_ARVALID && m_axi_e_ARREADY) begin
                if (ar_left == ar_len && !region) begin
                    region <= 1'b1;
                    ar_next <= pos_addr;
                    ar_left <= T * RB;
                end else begin
                    ar_next <= ar_next + 64'(ar_len) * BYTES;
                    ar_left <= ar_left - ar_len;
                end
            end
            if (rx) begin
                if (m_axi_e_RRESP != 2'b00) rd_error <= 1'b1;
                for (int v = 0; v < VPB; v++) begin
                    if (!cls_in) cls_buf[int'(rbeat) * VPB + v] <= m_axi_e_RDATA[v*BSB +: BW];
                    else pos_buf[rows_in[0]][int'(rbeat) * VPB + v] <= m_axi_e_RDATA[v*BSB +: BW];
                end
                if (int'(rbeat) != RB - 1) rbeat <= rbeat + 1'b1;
                else begin
                    rbeat <= '0;
                    if (!cls_in) cls_in <= 1'b1;
                    else rows_in <= rows_in + 1'b1;
                end
            end
            // stage 1: read F (row e - 1), latch pos (and cls) codes of word w
            if (issue) begin
                v2 <= 1'b1;
                first2 <= rows_out == 0;
                a2 <= FA'(int'(rows_out) * DW + int'(w));
                last2 <= int'(rows_out) == T - 1 && int'(w) == DW - 1;
                for (int l = 0; l < T_IN; l++) begin
                    int d;
                    longint cq;
                    d = int'(w) * T_IN + l;
                    m2[l] <= d < D;
                    if (d >= D) d = 0;
                    p2[l] <= pos_buf[rows_out[0]][d];
                    cq = shift_round(longint'($signed(cls_buf[d])), FB - FA_ACT, A_ROUND);
                    c2[l*WA +: WA] <= WA'(fit_act(cq));
                    if (rows_out == 0 && int'(w) * T_IN + l < D && out_of_act(cq)) ovf <= 1'b1;
                end
                if (int'(w) != DW - 1) w <= w + 1'b1;
                else begin
                    w <= '0;
                    rows_out <= rows_out + 1'b1;
                end
            end
            // stage 2: the exact sum on the finer grid, one rounding onto act, the X word
            if (v2) begin
                fm_we <= 1'b1;
                fm_waddr <= a2;
                for (int l = 0; l < T_IN; l++) begin
                    longint tok, s, q;
                    tok = longint'($signed(first2 ? c2[l*WA +: WA] : fm_rdata[l*WA +: WA]));
                    s = (tok <<< (FE - FA_ACT)) + (longint'($signed(p2[l])) <<< (FE - FB));
                    q = shift_round(s, FE - FA_ACT, A_ROUND);
                    fm_wstrb[l] <= 1'b1;
                    fm_wdata[l*WA +: WA] <= m2[l] ? WA'(fit_act(q)) : '0;
                    if (m2[l] && out_of_act(q)) ovf <= 1'b1;
                end
                if (last2) begin
                    running <= 1'b0;
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end
endmodule

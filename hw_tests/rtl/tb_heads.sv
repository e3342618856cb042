// Bench top of hw_tests/test_accel_heads.py: the head controller (accel_heads.sv) with what the
// sequencer would give it: the shared linear engine (linear_engine.sv) on its request port, reading
// HID and storing F as lu_store does (code n of row r at word r ceil(eng_cout / T_IN) + n / T_IN,
// only n < cout), and the borrowed buffers as RAMs with the feature-map banks' registered reads:
// QKV an fm_ram (band, upsample row 0), F two read ports and a strobed write (upsample row 1) beside
// the engine's code stores, HID written by the controller and read by the engine, H written by the
// bench (the backbone's final LayerNorm rows) and read by the grid store. The io port and the
// engine's weight ports go out to the bench's board-timed memories.
module tb_heads #(

    parameter int AXI_BITS = 256,
    parameter int SB = 32,
    parameter int WA = 32,
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int G = 8,
    parameter int BURST = 128,
    parameter int RD_OUTSTANDING = 2,
    parameter int WR_OUTSTANDING = 2,
    parameter int FA = 10,            // address bits of every borrowed buffer's port
    parameter int A_ROUND = 0,
    parameter int RESIZE_LFH = 1,     // the final resize's factors (kernels.h HEAD_RESIZE_LFH / LFW)
    parameter int RESIZE_LFW = 1,
    parameter int N_OPS = 1,
    parameter int N_TASKS = 1,
    parameter logic [N_OPS*16-1:0] P_KIND = '0,
    parameter logic [N_OPS*16-1:0] P_K = '0,
    parameter logic [N_OPS*16-1:0] P_RELU = '0,
    parameter logic [N_OPS*16-1:0] P_BAND = '0,
    parameter logic [N_OPS*16-1:0] P_CIN = '0,
    parameter logic [N_OPS*16-1:0] P_COUT = '0,
    parameter logic [N_OPS*16-1:0] P_H = '0,
    parameter logic [N_OPS*16-1:0] P_W = '0,
    parameter logic [N_OPS*16-1:0] P_LFH = '0,
    parameter logic [N_OPS*16-1:0] P_LFW = '0,
    parameter logic [N_OPS*16-1:0] P_SRC = '0,
    parameter logic [N_OPS*16-1:0] P_DST = '0,
    parameter logic [N_TASKS*16-1:0] OUT_CH = '0,
    parameter logic [N_TASKS*N_OPS*32-1:0] OFF_HEAD_W = '0,
    parameter logic [N_TASKS*N_OPS*32-1:0] OFF_HEAD_B = '0,
    parameter int GRID_C = 64,        // n_embd
    parameter int GRID_H = 8,
    parameter int GRID_W = 8,
    parameter int GRID_FIRST = 1,     // the class token's rows before the patches in H
    parameter int D_WORDS = 4,        // ceil(n_embd / T_IN): H's words a row
    parameter longint SCRATCH_BYTES = 4096,
    parameter int WW = 16,
    parameter int WSB = 16,
    parameter int WACC = 58,
    parameter int PACK2 = 0,
    parameter int PACK_SHIFT = 18,
    parameter int TILE_BEATS = 16,
    parameter int TILE_BYTES = 512,
    parameter int WPORTS = 1,
    parameter int ROWS_MAX = 256,
    parameter int KT_MAX = 64,
    parameter int NT_MAX = 64,
    parameter int NBUF = 2,
    parameter int BSB = 32,
    parameter int BW = 32,
    parameter int B_SHIFT = -14,
    parameter int B_ROUND = 2,
    parameter int ACC_SHIFT = 0,
    parameter int OW = 32,
    parameter int O_SHIFT = 14,
    parameter int O_ROUND = 0,
    parameter int O_SAT = 0
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic grid,
    input  logic [7:0] layer,
    input  logic [7:0] task_id,
    input  logic [63:0] pred_base,
    input  logic [63:0] scratch_base,
    input  logic [63:0] w_base,
    output logic busy,
    output logic done,
    output logic rd_error,
    output logic wr_error,
    output logic eng_rd_error,
    output logic ovf_any,             // out_ovf of a stored code since start
    // the bench's writes into H
    input  logic bw_we,
    input  logic [FA-1:0] bw_addr,
    input  logic [T_IN*WA-1:0] bw_data,
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
    output logic m_axi_BREADY,
    output logic [0:0] m_axi_w_ARID,
    output logic [63:0] m_axi_w_ARADDR,
    output logic [7:0] m_axi_w_ARLEN,
    output logic [2:0] m_axi_w_ARSIZE,
    output logic [1:0] m_axi_w_ARBURST,
    output logic m_axi_w_ARVALID,
    input  logic m_axi_w_ARREADY,
    input  logic [0:0] m_axi_w_RID,
    input  logic m_axi_w_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_w_RDATA,
    input  logic [1:0] m_axi_w_RRESP,
    input  logic m_axi_w_RVALID,
    output logic m_axi_w_RREADY,
    output logic [0:0] m_axi_w1_ARID,
    output logic [63:0] m_axi_w1_ARADDR,
    output logic [7:0] m_axi_w1_ARLEN,
    output logic [2:0] m_axi_w1_ARSIZE,
    output logic [1:0] m_axi_w1_ARBURST,
    output logic m_axi_w1_ARVALID,
    input  logic m_axi_w1_ARREADY,
    input  logic [0:0] m_axi_w1_RID,
    input  logic m_axi_w1_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_w1_RDATA,
    input  logic [1:0] m_axi_w1_RRESP,
    input  logic m_axi_w1_RVALID,
    output logic m_axi_w1_RREADY
);
    localparam int DEPTH = 1 << FA;
    logic eng_start, eng_has_bias, eng_done;
    logic [15:0] eng_rows, eng_k_tiles, eng_n_tiles, eng_cout;
    logic [63:0] eng_w_addr, eng_b_addr;
    logic [FA-1:0] qkv_addr1, qkv_addr2, hid_addr, f_addr1, f_addr2, h_addr;
    logic [T_IN*WA-1:0] qkv_q1, qkv_q2, qkv_d, hid_d, f_q1, f_q2, f_d, h_q;
    logic qkv_we, hid_we, f_we;
    logic [T_IN-1:0] qkv_strb, hid_strb, f_strb;
    accel_heads #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .T_OUT(T_OUT), .G(G), .BURST(BURST), .RD_OUTSTANDING(RD_OUTSTANDING), .WR_OUTSTANDING(WR_OUTSTANDING), .FA(FA), .A_ROUND(A_ROUND), .RESIZE_LFH(RESIZE_LFH), .RESIZE_LFW(RESIZE_LFW), .N_OPS(N_OPS), .N_TASKS(N_TASKS), .P_KIND(P_KIND), .P_K(P_K), .P_RELU(P_RELU), .P_BAND(P_BAND), .P_CIN(P_CIN), .P_COUT(P_COUT), .P_H(P_H), .P_W(P_W), .P_LFH(P_LFH), .P_LFW(P_LFW), .P_SRC(P_SRC), .P_DST(P_DST), .OUT_CH(OUT_CH), .OFF_HEAD_W(OFF_HEAD_W), .OFF_HEAD_B(OFF_HEAD_B), .GRID_C(GRID_C), .GRID_H(GRID_H), .GRID_W(GRID_W), .GRID_FIRST(GRID_FIRST), .D_WORDS(D_WORDS), .SCRATCH_BYTES(SCRATCH_BYTES)) heads (.*);

    fm_ram #(.WA(WA), .LANES(T_IN), .DEPTH(DEPTH)) qkv (
        .clk, .p1_addr(qkv_addr1), .p1_q(qkv_q1), .p2_addr(qkv_addr2), .p2_we(qkv_we), .p2_strb(qkv_strb),
        .p2_d(qkv_d), .p2_q(qkv_q2));

    // H: the bench writes it, the grid store reads it
    logic [T_IN*WA-1:0] hmem [DEPTH];
    always_ff @(posedge clk) begin
        if (bw_we) hmem[bw_addr] <= bw_data;
        h_q <= hmem[h_addr];
    end

    // HID: the controller writes (strobed), the engine reads word kb of row r at r k_tiles + kb
    logic [T_IN*WA-1:0] hid [DEPTH];
    logic [T_IN*WA-1:0] x_rdata;
    /* verilator lint_off UNUSEDSIGNAL */
    logic x_re;
    logic [15:0] x_rd_row, x_rd_word;
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        if (hid_we)
            for (int l = 0; l < T_IN; l++)
                if (hid_strb[l]) hid[hid_addr][l*WA +: WA] <= hid_d[l*WA +: WA];
        x_rdata <= hid[FA'(32'(x_rd_row) * 32'(eng_k_tiles) + 32'(x_rd_word))];
    end

    // F: a code a lane; the engine's stores, the upsample's strobed row writes, two registered reads
    logic [WA-1:0] fcode [DEPTH * T_IN];
    logic out_valid;
    logic [15:0] out_row, out_ntile;
    logic [T_OUT*OW-1:0] out_y;
    logic [T_OUT-1:0] out_ovf;
    wire [31:0] n_words = (32'(eng_cout) + T_IN - 1) / T_IN;
    always_ff @(posedge clk) begin
        if (start) ovf_any <= 1'b0;
        if (out_valid)
            for (int t = 0; t < T_OUT; t++) begin
                automatic int nn = int'(out_ntile) * T_OUT + t;
                if (nn < int'(eng_cout)) begin
                    fcode[32'(out_row) * n_words * T_IN + 32'(nn)] <= out_y[t*OW +: OW];
                    if (out_ovf[t]) ovf_any <= 1'b1;
                end
            end
        if (f_we)
            for (int l = 0; l < T_IN; l++)
                if (f_strb[l]) fcode[32'(f_addr2) * T_IN + l] <= f_d[l*WA +: WA];
        for (int l = 0; l < T_IN; l++) begin
            f_q1[l*WA +: WA] <= fcode[32'(f_addr1) * T_IN + l];
            f_q2[l*WA +: WA] <= fcode[32'(f_addr2) * T_IN + l];
        end
    end

    /* verilator lint_off UNUSEDSIGNAL */
    logic eng_busy;
    /* verilator lint_on UNUSEDSIGNAL */
    linear_engine #(.T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WSB(WSB), .WACC(WACC), .PACK2(PACK2),
                    .PACK_SHIFT(PACK_SHIFT), .AXI_BITS(AXI_BITS), .TILE_BEATS(TILE_BEATS),
                    .TILE_BYTES(TILE_BYTES), .WPORTS(WPORTS), .ROWS_MAX(ROWS_MAX), .KT_MAX(KT_MAX),
                    .NT_MAX(NT_MAX), .NBUF(NBUF), .BSB(BSB), .BW(BW), .B_SHIFT(B_SHIFT), .B_ROUND(B_ROUND),
                    .ACC_SHIFT(ACC_SHIFT), .OW(OW), .O_SHIFT(O_SHIFT), .O_ROUND(O_ROUND), .O_SAT(O_SAT)) engine (
        .clk, .rst, .start(eng_start), .rows(eng_rows), .k_tiles(eng_k_tiles), .n_tiles(eng_n_tiles),
        .w_addr(eng_w_addr), .has_bias(eng_has_bias), .b_addr(eng_b_addr), .out_logit(1'b0), .in_input(1'b0),
        .busy(eng_busy), .done(eng_done), .rd_error(eng_rd_error), .x_re, .x_rd_row, .x_rd_word, .x_rdata,
        .out_valid, .out_row, .out_ntile, .out_y, .out_ovf,
        .m_axi_w_ARID, .m_axi_w_ARADDR, .m_axi_w_ARLEN, .m_axi_w_ARSIZE, .m_axi_w_ARBURST,
        .m_axi_w_ARVALID, .m_axi_w_ARREADY, .m_axi_w_RID, .m_axi_w_RLAST, .m_axi_w_RDATA, .m_axi_w_RRESP,
        .m_axi_w_RVALID, .m_axi_w_RREADY, .m_axi_w1_ARID, .m_axi_w1_ARADDR, .m_axi_w1_ARLEN, .m_axi_w1_ARSIZE,
        .m_axi_w1_ARBURST, .m_axi_w1_ARVALID, .m_axi_w1_ARREADY, .m_axi_w1_RID, .m_axi_w1_RLAST,
        .m_axi_w1_RDATA, .m_axi_w1_RRESP, .m_axi_w1_RVALID, .m_axi_w1_RREADY);
endmodule

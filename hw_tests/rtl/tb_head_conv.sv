// Bench top of hw_tests/test_head_conv.py: one band of a task head's conv pass on chip, as kernels.h
// head_conv runs it after head_read_rows — band RAM -> accel_him2col -> HID RAM -> linear_engine -> F.
// The bench writes the band buffer as the DDR reader (head_read_rows) would (pixel (r, x) word q at
// (r * w + x) * cw + q, the halo rows zero at the map's edges), or, for the 1x1 classifier, the cols
// directly into HID (head_read_rows into cols: a pixel's channels are its row); then it starts
// accel_him2col (3x3) and the linear engine, which reads word kb of row r of HID at r * k_tiles + kb
// (kernels.h linear_unit's in[r * k_tiles + kb]) and whose outputs go to F as lu_store puts them:
// code n of row r at word r * ceil(cout / T_IN) + n / T_IN, lane n % T_IN, only n < cout (kernels.h's
// out[r * n_words + w]). F's read port and the sticky out_ovf of the stored codes are the bench's.
// The RAMs are the feature-map banks' (accel_fm.sv): registered reads, the data the next cycle.
module tb_head_conv #(
    parameter int T_IN = 16,
    parameter int BA = 12,            // band buffer address bits
    parameter int HA = 12,            // HID address bits
    parameter int FCA = 12,           // F code address bits (a code a lane: row * n_words * T_IN + n)
    parameter int T_OUT = 16,
    parameter int WA = 32,
    parameter int WW = 16,
    parameter int WSB = 16,
    parameter int WACC = 58,
    parameter int PACK2 = 0,
    parameter int PACK_SHIFT = 18,
    parameter int AXI_BITS = 256,
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
    // the bench's writes: the band (sel 0) or HID (sel 1)
    input  logic bw_we,
    input  logic bw_sel,
    input  logic [(BA > HA ? BA : HA)-1:0] bw_addr,
    input  logic [T_IN*WA-1:0] bw_data,
    // accel_him2col
    input  logic ic_start,
    input  logic [15:0] c,
    input  logic [15:0] w,
    input  logic [15:0] n,
    output logic ic_busy,
    output logic ic_done,
    // the linear engine
    input  logic start,
    input  logic [15:0] rows,
    input  logic [15:0] k_tiles,
    input  logic [15:0] n_tiles,
    input  logic [15:0] cout,
    input  logic [63:0] w_addr,
    input  logic has_bias,
    input  logic [63:0] b_addr,
    output logic busy,
    output logic done,
    output logic rd_error,
    output logic ovf_any,             // out_ovf of a stored code since start
    // F, read by the bench after done
    input  logic [FCA-1:0] f_raddr,   // word address (T_IN codes)
    output logic [T_IN*WA-1:0] f_rdata,
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

    // band buffer: the bench writes it, accel_him2col reads it
    logic [T_IN*WA-1:0] band [1 << BA];
    logic [T_IN*WA-1:0] band_rdata;
    logic band_re;
    logic [BA-1:0] band_raddr;
    always_ff @(posedge clk) begin
        if (bw_we && !bw_sel) band[BA'(bw_addr)] <= bw_data;
        if (band_re) band_rdata <= band[band_raddr];
    end

    // HID: accel_him2col's cols (or the bench's, 1x1), read by the engine
    logic [T_IN*WA-1:0] hid [1 << HA];
    logic [T_IN*WA-1:0] x_rdata;
    logic hid_we;
    logic [HA-1:0] hid_waddr;
    logic [T_IN*WA-1:0] hid_wdata;
    /* verilator lint_off UNUSEDSIGNAL */  // the RAM reads every cycle; rows and words stay in range
    logic x_re;
    logic [15:0] x_rd_row, x_rd_word;
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        if (bw_we && bw_sel) hid[HA'(bw_addr)] <= bw_data;
        if (hid_we) hid[hid_waddr] <= hid_wdata;
        x_rdata <= hid[HA'(32'(x_rd_row) * 32'(k_tiles) + 32'(x_rd_word))];
    end

    accel_him2col #(.T_IN(T_IN), .WA(WA), .BA(BA), .HA(HA)) im2col (
        .clk, .rst, .start(ic_start), .c, .w, .n, .busy(ic_busy), .done(ic_done), .band_re, .band_raddr,
        .band_rdata, .hid_we, .hid_waddr, .hid_wdata);

    // F: one code a lane
    logic [WA-1:0] fcode [(1 << FCA) * T_IN];
    logic out_valid;
    logic [15:0] out_row, out_ntile;
    logic [T_OUT*OW-1:0] out_y;
    logic [T_OUT-1:0] out_ovf;
    wire [31:0] n_words = (32'(cout) + T_IN - 1) / T_IN;
    always_ff @(posedge clk) begin
        if (start) ovf_any <= 1'b0;
        if (out_valid)
            for (int t = 0; t < T_OUT; t++) begin
                automatic int nn = int'(out_ntile) * T_OUT + t;
                if (nn < int'(cout)) begin
                    fcode[32'(out_row) * n_words * T_IN + 32'(nn)] <= out_y[t*OW +: OW];
                    if (out_ovf[t]) ovf_any <= 1'b1;
                end
            end
        for (int l = 0; l < T_IN; l++) f_rdata[l*WA +: WA] <= fcode[32'(f_raddr) * T_IN + l];
    end

    linear_engine #(.T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WSB(WSB), .WACC(WACC), .PACK2(PACK2),
                    .PACK_SHIFT(PACK_SHIFT), .AXI_BITS(AXI_BITS), .TILE_BEATS(TILE_BEATS),
                    .TILE_BYTES(TILE_BYTES), .WPORTS(WPORTS), .ROWS_MAX(ROWS_MAX), .KT_MAX(KT_MAX), .NT_MAX(NT_MAX), .NBUF(NBUF),
                    .BSB(BSB), .BW(BW), .B_SHIFT(B_SHIFT), .B_ROUND(B_ROUND), .ACC_SHIFT(ACC_SHIFT),
                    .OW(OW), .O_SHIFT(O_SHIFT), .O_ROUND(O_ROUND), .O_SAT(O_SAT)) engine (
        .clk, .rst, .start, .rows, .k_tiles, .n_tiles, .w_addr, .has_bias, .b_addr, .out_logit(1'b0), .in_input(1'b0), .busy,
        .done, .rd_error, .x_re, .x_rd_row, .x_rd_word, .x_rdata, .out_valid, .out_row, .out_ntile, .out_y,
        .out_ovf, .m_axi_w_ARID, .m_axi_w_ARADDR, .m_axi_w_ARLEN, .m_axi_w_ARSIZE, .m_axi_w_ARBURST,
        .m_axi_w_ARVALID, .m_axi_w_ARREADY, .m_axi_w_RID, .m_axi_w_RLAST, .m_axi_w_RDATA, .m_axi_w_RRESP,
        .m_axi_w_RVALID, .m_axi_w_RREADY, .m_axi_w1_ARID, .m_axi_w1_ARADDR, .m_axi_w1_ARLEN, .m_axi_w1_ARSIZE,
        .m_axi_w1_ARBURST, .m_axi_w1_ARVALID, .m_axi_w1_ARREADY, .m_axi_w1_RID, .m_axi_w1_RLAST, .m_axi_w1_RDATA,
        .m_axi_w1_RRESP, .m_axi_w1_RVALID, .m_axi_w1_RREADY);
endmodule

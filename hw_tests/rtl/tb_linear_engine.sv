// Bench top of hw_tests/test_linear_engine.py: linear_engine.sv with its input rows in a RAM the
// bench fills before start (word r * KT_MAX + kb = x[r][kb*T_IN +: T_IN]), read by the engine as it
// reads the accelerator's feature-map buffers (accel_fm.sv): a registered read of the (row, word) it
// asks for. Outputs in the act format (out_logit = 0); the AXI4 weight master passes through.
module tb_linear_engine #(
    parameter int T_IN = 16,
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
    input  logic start,
    input  logic [15:0] rows,
    input  logic [15:0] k_tiles,
    input  logic [15:0] n_tiles,
    input  logic [63:0] w_addr,
    input  logic has_bias,
    input  logic [63:0] b_addr,
    output logic busy,
    output logic done,
    output logic rd_error,
    input  logic x_we,
    input  logic [$clog2(ROWS_MAX*KT_MAX)-1:0] x_addr,
    input  logic [T_IN*WA-1:0] x_data,
    output logic out_valid,
    output logic [15:0] out_row,
    output logic [15:0] out_ntile,
    output logic [T_OUT*OW-1:0] out_y,
    output logic [T_OUT-1:0] out_ovf,
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
    localparam int XA = $clog2(ROWS_MAX * KT_MAX);
    logic [T_IN*WA-1:0] xmem [ROWS_MAX*KT_MAX];
    logic [T_IN*WA-1:0] x_rdata;
    /* verilator lint_off UNUSEDSIGNAL */  // the RAM reads every cycle; rows and words stay in range
    logic x_re;
    logic [15:0] x_rd_row, x_rd_word;
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        if (x_we) xmem[x_addr] <= x_data;
        x_rdata <= xmem[XA'(32'(x_rd_row) * KT_MAX + 32'(x_rd_word))];
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

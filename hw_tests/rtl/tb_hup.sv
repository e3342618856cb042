// Bench top of accel_hup.sv: the unit with its two row buffers as fm_ram banks (the sequencer would
// point the ports at QKV and F instead), the AXI ports passed through to the bench's memories.
module tb_hup #(
    parameter int AXI_BITS = 256,
    parameter int SB = 32,
    parameter int WA = 32,
    parameter int T_IN = 16,
    parameter int G = 8,
    parameter int BURST = 128,
    parameter int RD_OUTSTANDING = 2,
    parameter int WR_OUTSTANDING = 2,
    parameter int FA = 10,
    parameter int DEPTH = 1024,       // words of a row buffer
    parameter int LFH = 1,
    parameter int LFW = 1,
    parameter int A_ROUND = 0
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic to_pred,
    input  logic [15:0] c,
    input  logic [15:0] h,
    input  logic [15:0] w,
    input  logic [63:0] src,
    input  logic [63:0] dst,
    output logic busy,
    output logic done,
    output logic rd_error,
    output logic wr_error,
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
    output logic m_axi_BREADY
);
    logic [FA-1:0] r0_addr1, r0_addr2, r1_addr1, r1_addr2;
    logic [T_IN*WA-1:0] r0_q1, r0_q2, r0_d, r1_q1, r1_q2, r1_d;
    logic r0_we, r1_we;
    logic [T_IN-1:0] r0_strb, r1_strb;
    accel_hup #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                .RD_OUTSTANDING(RD_OUTSTANDING), .WR_OUTSTANDING(WR_OUTSTANDING), .FA(FA), .LFH(LFH),
                .LFW(LFW), .A_ROUND(A_ROUND)) up (.*);
    fm_ram #(.WA(WA), .LANES(T_IN), .DEPTH(DEPTH)) row0 (
        .clk, .p1_addr(r0_addr1), .p1_q(r0_q1), .p2_addr(r0_addr2), .p2_we(r0_we), .p2_strb(r0_strb),
        .p2_d(r0_d), .p2_q(r0_q2));
    fm_ram #(.WA(WA), .LANES(T_IN), .DEPTH(DEPTH)) row1 (
        .clk, .p1_addr(r1_addr1), .p1_q(r1_q1), .p2_addr(r1_addr2), .p2_we(r1_we), .p2_strb(r1_strb),
        .p2_d(r1_d), .p2_q(r1_q2));
endmodule

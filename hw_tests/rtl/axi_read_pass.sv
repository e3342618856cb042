// An AXI4 read channel passed straight through: the test bench for hw_tests/board_memory.py, whose
// cocotbext-axi master (s_axi side) reads from the board-timed memory (m_axi side) through it, so
// the bus the memory sees is a real Verilator bus with the handshakes an RTL master makes.
module axi_read_pass #(
    parameter int AXI_BITS = 256,
    parameter int ID_BITS = 4
) (
    input  logic clk,
    input  logic rst,
    input  logic [ID_BITS-1:0] s_axi_ARID,
    input  logic [63:0] s_axi_ARADDR,
    input  logic [7:0] s_axi_ARLEN,
    input  logic [2:0] s_axi_ARSIZE,
    input  logic [1:0] s_axi_ARBURST,
    input  logic s_axi_ARVALID,
    output logic s_axi_ARREADY,
    output logic [ID_BITS-1:0] s_axi_RID,
    output logic [AXI_BITS-1:0] s_axi_RDATA,
    output logic [1:0] s_axi_RRESP,
    output logic s_axi_RLAST,
    output logic s_axi_RVALID,
    input  logic s_axi_RREADY,
    output logic [ID_BITS-1:0] m_axi_ARID,
    output logic [63:0] m_axi_ARADDR,
    output logic [7:0] m_axi_ARLEN,
    output logic [2:0] m_axi_ARSIZE,
    output logic [1:0] m_axi_ARBURST,
    output logic m_axi_ARVALID,
    input  logic m_axi_ARREADY,
    input  logic [ID_BITS-1:0] m_axi_RID,
    input  logic [AXI_BITS-1:0] m_axi_RDATA,
    input  logic [1:0] m_axi_RRESP,
    input  logic m_axi_RLAST,
    input  logic m_axi_RVALID,
    output logic m_axi_RREADY
);
    /* verilator lint_off UNUSEDSIGNAL */  // a clock and reset for the cocotb models only
    logic unused;
    assign unused = clk ^ rst;
    /* verilator lint_on UNUSEDSIGNAL */
    assign m_axi_ARID = s_axi_ARID;
    assign m_axi_ARADDR = s_axi_ARADDR;
    assign m_axi_ARLEN = s_axi_ARLEN;
    assign m_axi_ARSIZE = s_axi_ARSIZE;
    assign m_axi_ARBURST = s_axi_ARBURST;
    assign m_axi_ARVALID = s_axi_ARVALID;
    assign s_axi_ARREADY = m_axi_ARREADY;
    assign s_axi_RID = m_axi_RID;
    assign s_axi_RDATA = m_axi_RDATA;
    assign s_axi_RRESP = m_axi_RRESP;
    assign s_axi_RLAST = m_axi_RLAST;
    assign s_axi_RVALID = m_axi_RVALID;
    assign m_axi_RREADY = s_axi_RREADY;
endmodule

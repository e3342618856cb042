// N AXI4 read masters merged onto one read port (accel_top.sv: the sequencer's program, weight and
// LayerNorm-parameter masters onto m_axi_gmem_w, the bundle the HLS top reads its weights through).
//
// Address channel: round robin. Among the masters with ARVALID, the first at or after `ptr` is
// granted; if the slave does not take the request in that cycle the grant is locked (AXI: a master
// keeps ARVALID and its payload until ARREADY, so the merged port must too) until the handshake, after
// which `ptr` moves past the granted master. No bubble: a request is passed through in the cycle it
// arrives. The master's index goes into the top bits of ARID ({index, master's ARID}).
//
// Read data channel: every beat is routed by its RID's index bits to that master (its own ID bits
// returned), RREADY taken from that master. So any number of bursts may be outstanding per master,
// and the slave may return different masters' bursts reordered or interleaved beat by beat (AXI4
// allows both across IDs); within one master (one ID) AXI keeps its order.
module axi_rd_arbiter #(
    parameter int N = 3,         // masters
    parameter int AXI_BITS = 256,
    parameter int ID_W = 1,      // each master's ARID / RID width
    parameter int IW = N > 1 ? $clog2(N) : 1,  // index bits added to the ID
    localparam int OID_W = ID_W + IW
) (
    input  logic clk,
    input  logic rst,
    // the masters' ports, master i in bits [i*W +: W]
    input  logic [N*ID_W-1:0] s_ARID,
    input  logic [N*64-1:0] s_ARADDR,
    input  logic [N*8-1:0] s_ARLEN,
    input  logic [N*3-1:0] s_ARSIZE,
    input  logic [N*2-1:0] s_ARBURST,
    input  logic [N-1:0] s_ARVALID,
    output logic [N-1:0] s_ARREADY,
    output logic [N*ID_W-1:0] s_RID,
    output logic [N*AXI_BITS-1:0] s_RDATA,
    output logic [N*2-1:0] s_RRESP,
    output logic [N-1:0] s_RLAST,
    output logic [N-1:0] s_RVALID,
    input  logic [N-1:0] s_RREADY,
    // the merged port
    output logic [OID_W-1:0] m_ARID,
    output logic [63:0] m_ARADDR,
    output logic [7:0] m_ARLEN,
    output logic [2:0] m_ARSIZE,
    output logic [1:0] m_ARBURST,
    output logic m_ARVALID,
    input  logic m_ARREADY,
    input  logic [OID_W-1:0] m_RID,
    input  logic [AXI_BITS-1:0] m_RDATA,
    input  logic [1:0] m_RRESP,
    input  logic m_RLAST,
    input  logic m_RVALID,
    output logic m_RREADY
);
    logic [IW-1:0] ptr, pick, sel, lock_g;
    logic locked;

    // the first requester at or after ptr (round robin)
    always_comb begin
        pick = ptr;
        for (int k = N - 1; k >= 0; k--)
            if (s_ARVALID[(int'(ptr) + k) % N]) pick = IW'((int'(ptr) + k) % N);
    end
    assign sel = locked ? lock_g : pick;

    assign m_ARVALID = |s_ARVALID;
    assign m_ARID = {sel, s_ARID[sel*ID_W +: ID_W]};
    assign m_ARADDR = s_ARADDR[sel*64 +: 64];
    assign m_ARLEN = s_ARLEN[sel*8 +: 8];
    assign m_ARSIZE = s_ARSIZE[sel*3 +: 3];
    assign m_ARBURST = s_ARBURST[sel*2 +: 2];
    always_comb begin
        s_ARREADY = '0;
        s_ARREADY[sel] = m_ARREADY;
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            ptr <= '0;
            locked <= 1'b0;
            lock_g <= '0;
        end else if (m_ARVALID && m_ARREADY) begin
            locked <= 1'b0;
            ptr <= 32'(sel) == N - 1 ? '0 : sel + 1'b1;
        end else if (m_ARVALID) begin
            locked <= 1'b1;
            lock_g <= sel;
        end
    end

    // read data: by the RID's index bits
    wire [IW-1:0] rsel = m_RID[OID_W-1 -: IW];
    always_comb begin
        s_RVALID = '0;
        s_RVALID[rsel] = m_RVALID;
        for (int i = 0; i < N; i++) begin
            s_RID[i*ID_W +: ID_W] = m_RID[ID_W-1:0];
            s_RDATA[i*AXI_BITS +: AXI_BITS] = m_RDATA;
            s_RRESP[i*2 +: 2] = m_RRESP;
            s_RLAST[i] = m_RLAST;
        end
    end
    assign m_RREADY = s_RREADY[rsel];
endmodule

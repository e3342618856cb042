// A LayerNorm step of the layer program (kernels.h layer_norm): gamma and beta (D bias codes each,
// BSB-bit storage words in weights.bin at g_addr / b_addr) loaded once per call into on-chip arrays
// over an AXI4 read master (one INCR burst per vector, split only at a 4 KiB boundary), then the
// rows of the input feature map through layernorm_unit.sv (L lanes a beat, one row at a time),
// the outputs streamed out with their beat index. done pulses after the last output beat.
// The input is the caller's feature-map buffer (accel_fm.sv: words of T_IN act codes, rows of D
// codes): the unit puts out the word address of the beat it takes next (x_raddr = beat * L / T_IN)
// and takes a window of XW words read there the next cycle (a registered read), its L lanes at
// (beat * L) % T_IN (L < T_IN: part of a word; L > T_IN: L / T_IN whole words).
// The cycles follow the performance model's LayerNorm step (mtl_moe/perf.py step_cost "layernorm"):
// rows x (3 D/L + 8) + the two parameter bursts + one first-beat latency.
module accel_ln #(
    parameter int D = 64,
    parameter int L = 8,
    parameter int W = 32,
    parameter int F = 22,
    parameter int A_ROUND = 0,
    parameter int A_SAT = 0,
    parameter int BW = 32,
    parameter int BF = 22,
    parameter int SW = 48,
    parameter int SF = 32,
    parameter int S_SAT = 0,
    parameter int EPS = 1,
    parameter int RW = 32,
    parameter int RF = 21,
    parameter int R_SIGNED = 0,
    parameter int R_ROUND = 1,
    parameter int R_SAT = 0,
    parameter int N = 97,
    parameter int STEP = 5,
    parameter int EW = 18,
    parameter int EF = 17,
    parameter TABLE = "rsqrt_table.mem",
    parameter int BSB = 32,           // bias storage bits in weights.bin
    parameter int AXI_BITS = 256,
    parameter int T_IN = 16,          // lanes of a feature-map word
    parameter int XW = 1              // words of the read window (>= ceil(L / T_IN))
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [15:0] rows,
    input  logic [63:0] g_addr,
    input  logic [63:0] b_addr,
    output logic done,
    // the input rows: the word address of the next beat, the window read there a cycle before
    output logic [31:0] x_raddr,
    input  logic [XW*T_IN*W-1:0] x_rwin,
    output logic out_valid,
    output logic [31:0] out_index,    // beat r * (D / L) + b
    output logic [L*W-1:0] out_y,
    output logic [L-1:0] out_ovf,
    output logic [0:0] m_axi_ARID,
    output logic [63:0] m_axi_ARADDR,
    output logic [7:0] m_axi_ARLEN,
    output logic [2:0] m_axi_ARSIZE,
    output logic [1:0] m_axi_ARBURST,
    output logic m_axi_ARVALID,
    input  logic m_axi_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID; burst lengths are the loader's own counts
    input  logic [0:0] m_axi_RID,
    input  logic m_axi_RLAST,
    input  logic [1:0] m_axi_RRESP,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [AXI_BITS-1:0] m_axi_RDATA,
    input  logic m_axi_RVALID,
    output logic m_axi_RREADY
);
    localparam int B = D / L;                              // beats of a row
    localparam int VPB = AXI_BITS / BSB;                   // parameter values per AXI beat
    localparam int PB = (D + VPB - 1) / VPB;               // AXI beats of one parameter vector
    localparam int DA = D > 1 ? $clog2(D) : 1;
    initial if ((L < T_IN && T_IN % L != 0) || (L > T_IN && L % T_IN != 0) || XW * T_IN < L || D % T_IN != 0)
        $error("accel_ln: %0d lanes a beat do not tile %0d-lane words (a window of %0d) of %0d-code rows",
               L, T_IN, XW, D);
    logic [BSB-1:0] gam [D], bet [D];

    // ---- parameter loader: vector 0 = gamma, 1 = beta; bursts split at 4 KiB -----------------
    logic loading, running;
    logic [31:0] rq_beats, rx_beats;   // beats requested, received over both vectors (2 * PB)
    logic [63:0] rq_addr;
    logic [31:0] rq_left, page, len;
    assign rq_addr = rq_beats < PB ? g_addr + 64'(rq_beats) * 64'(AXI_BITS / 8)
                                   : b_addr + 64'(rq_beats - PB) * 64'(AXI_BITS / 8);
    assign rq_left = rq_beats < PB ? PB - rq_beats : 2 * PB - rq_beats;
    assign page = (32'd4096 - 32'(rq_addr[11:0])) / (AXI_BITS / 8);
    always_comb begin
        len = rq_left;
        if (len > 256) len = 256;
        if (len > page) len = page;
    end
    assign m_axi_ARID = '0;
    assign m_axi_ARADDR = rq_addr;
    assign m_axi_ARLEN = 8'(len - 1);
    assign m_axi_ARSIZE = 3'($clog2(AXI_BITS / 8));
    assign m_axi_ARBURST = 2'b01;
    assign m_axi_ARVALID = loading && rq_beats < 2 * PB;
    assign m_axi_RREADY = 1'b1;

    always_ff @(posedge clk) begin
        if (rst) loading <= 1'b0;
        else if (start) begin
            loading <= 1'b1;
            rq_beats <= '0;
            rx_beats <= '0;
        end else if (loading) begin
            if (m_axi_ARVALID && m_axi_ARREADY) rq_beats <= rq_beats + len;
            if (m_axi_RVALID) begin
                for (int v = 0; v < VPB; v++) begin
                    int i;
                    i = (rx_beats < PB ? rx_beats : rx_beats - PB) * VPB + v;
                    if (i < D) begin
                        if (rx_beats < PB) gam[DA'(i)] <= m_axi_RDATA[v*BSB +: BSB];
                        else bet[DA'(i)] <= m_axi_RDATA[v*BSB +: BSB];
                    end
                end
                rx_beats <= rx_beats + 1;
                if (rx_beats == 2 * PB - 1) loading <= 1'b0;
            end
        end
    end

    // ---- rows through the unit, one beat a cycle while it is ready ----------------------------
    logic in_valid, in_ready, u_valid;
    logic [31:0] feed, outs, total;
    logic [L*W-1:0] ux;
    logic [L*BW-1:0] ug, ub;
    logic [L-1:0] u_ovf;
    logic [L*W-1:0] u_y;
    assign in_valid = running && !loading && feed < total;
    // the beat taken next cycle: its word is read now
    assign x_raddr = ((start ? 32'd0 : feed + 32'(in_valid && in_ready)) * L) / T_IN;
    assign ux = (L*W)'(x_rwin >> (((feed * L) % T_IN) * W));
    always_comb
        for (int l = 0; l < L; l++) begin
            ug[l*BW +: BW] = gam[DA'((feed % B) * L + l)][BW-1:0];
            ub[l*BW +: BW] = bet[DA'((feed % B) * L + l)][BW-1:0];
        end

    always_ff @(posedge clk) begin
        done <= 1'b0;
        out_valid <= 1'b0;
        if (rst) running <= 1'b0;
        else if (start) begin
            running <= 1'b1;
            feed <= '0;
            outs <= '0;
            total <= 32'(rows) * B;
        end else if (running) begin
            if (in_valid && in_ready) feed <= feed + 1;
            if (u_valid) begin
                out_valid <= 1'b1;
                out_index <= outs;
                out_y <= u_y;
                out_ovf <= u_ovf;
                outs <= outs + 1;
                if (outs == total - 1) begin
                    running <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end

    layernorm_unit #(.D(D), .L(L), .W(W), .F(F), .A_ROUND(A_ROUND), .A_SAT(A_SAT), .BW(BW), .BF(BF), .SW(SW),
                     .SF(SF), .S_SAT(S_SAT), .EPS(EPS), .RW(RW), .RF(RF), .R_SIGNED(R_SIGNED),
                     .R_ROUND(R_ROUND), .R_SAT(R_SAT), .N(N), .STEP(STEP), .EW(EW), .EF(EF),
                     .TABLE(TABLE)) unit (
        .clk, .rst, .in_valid, .in_ready, .x(ux), .gamma(ug), .beta(ub), .out_valid(u_valid), .y(u_y),
        .overflow(u_ovf));
endmodule

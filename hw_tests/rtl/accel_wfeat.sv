// The write_features step of the layer program: the backbone's features, the final LayerNorm's
// output rows in H minus the class token, written to DDR over an AXI4 write master in the layout
// kernels.h write_features and the driver use: (D, GRID_H, GRID_W) act codes of batch entry b,
// code (d, p) at index g = code0 + d * rows + p (rows = n_patches, code0 = b * N_OUT), each code
// sign-extended into SB storage bits (8 * OUT_BYTES) and packed little-endian, PER = AXI_BITS / SB
// codes a word: code g in word g / PER, lane g % PER. Image b's first word and image b-1's last may
// be the same word (N_OUT not a multiple of PER): kernels.h carries that word across images; here
// each beat's WSTRB covers only its own codes' bytes, so the DDR bytes of the features are the same
// and no word is carried.
//
// Schedule (what mtl_moe/perf.py's step_cost "write_features" counts):
//   - read loop, one code a cycle as kernels.h's (PIPELINE II=1 over N_OUT = rows x n codes, d outer,
//     p inner): the H word (p + CLS) * WPR + d / T_IN on the feature-map read port (registered: data
//     the next cycle), lane d % T_IN; it stalls only if the W FIFO could overflow;
//   - pack: the code into its beat's lane; a beat is pushed into a FD-entry W FIFO when its last lane
//     is filled or the image's last code is;
//   - AW: the step's beats as INCR bursts of up to BURST beats (256 and 4 KiB per burst), split where
//     one would cross 4 KiB, issued back to back while fewer than OUTSTANDING bursts await their B;
//   - W: the FIFO's beats, each once its burst's AW is out, WLAST on a burst's last beat;
//   - B: counted; done (one pulse, registered) once the last burst's response is in.
// So start -> done = the read loop (N_OUT cycles, + the start cycle), its last beat through the FIFO
// onto W, the memory's write response, done's register (when the port is slower than PER codes a
// beat, the W stream sets the pace instead).
module accel_wfeat #(
    parameter int AXI_BITS = 256,
    parameter int T_IN = 16,
    parameter int WA = 32,            // act width: a lane of a feature-map word
    parameter int SB = 32,            // storage bits of one feature code in DDR (8 * OUT_BYTES), WA <= SB
    parameter int CLS = 1,            // rows of H before the first patch's (the class token: dropped)
    parameter int BURST = 128,        // beats of one burst: min(256, 4096 / (AXI_BITS / 8))
    parameter int OUTSTANDING = 2,    // write bursts awaiting their response at most
    parameter int FA = 10,            // feature-map address bits
    parameter int FD = 4              // W FIFO entries
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [15:0] rows,         // patches (the record's rows)
    input  logic [31:0] n,            // features per patch, n_embd (the record's n)
    input  logic [31:0] code0,        // the first code's index in the features buffer (b * N_OUT)
    input  logic [63:0] feat_addr,    // byte address of the features buffer, AXI_BITS/8-aligned
    output logic busy,
    output logic done,
    output logic wr_error,            // a write response was not OKAY (sticky until start)
    // feature-map read port (H)
    output logic fm_re,
    output logic [FA-1:0] fm_raddr,
    input  logic [T_IN*WA-1:0] fm_rdata,
    // AXI4 write master (the io port)
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
    /* verilator lint_off UNUSEDSIGNAL */  // one ID
    input  logic [0:0] m_axi_BID,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [1:0] m_axi_BRESP,
    input  logic m_axi_BVALID,
    output logic m_axi_BREADY
);
    localparam int PER = AXI_BITS / SB;             // codes in one beat
    localparam int BYTES = AXI_BITS / 8;
    localparam int LB = SB / 8;                     // bytes of one code
    localparam int LW = PER > 1 ? $clog2(PER) : 1;  // a lane index in the beat
    localparam int TW = T_IN > 1 ? $clog2(T_IN) : 1;
    localparam int FW = $clog2(FD + 1);
    localparam int OW = $clog2(OUTSTANDING + 1);
    initial begin
        if (AXI_BITS % SB != 0 || SB % 8 != 0 || PER < 2 || (PER & (PER - 1)) != 0)
            $error("accel_wfeat: a beat must hold a power of two (>= 2) of whole-byte codes");
        if (WA > SB) $error("accel_wfeat: act width %0d exceeds its storage %0d", WA, SB);
        if (FD < 2) $error("accel_wfeat: the W FIFO needs 2 entries at least");
    end

    logic running;
    logic [31:0] n_codes, issued;                   // codes of the step, codes read so far
    logic [31:0] n_beats, aw_beats, w_beats, w_bstart;
    logic [OW-1:0] aw_open;                         // bursts out without their response yet
    logic [63:0] addr0;                             // the step's first word
    logic [31:0] wpr;
    logic [15:0] p;
    logic [31:0] rbase, dw;                         // H address of row p + CLS; word of d in the row
    logic [TW-1:0] dl;                              // lane of d in that word
    logic [LW-1:0] bl;                              // lane of the next code in its beat

    // ---- AW: the step's beats as bursts within 4 KiB ----
    `include "axi_burst.svh"
    logic [31:0] aw_len, w_len;
    assign aw_len = axi_burst_len(addr0 + 64'(aw_beats) * BYTES, n_beats - aw_beats, BYTES, BURST);
    assign w_len = axi_burst_len(addr0 + 64'(w_bstart) * BYTES, n_beats - w_bstart, BYTES, BURST);
    assign m_axi_AWID = '0;
    assign m_axi_AWADDR = addr0 + 64'(aw_beats) * BYTES;
    assign m_axi_AWLEN = 8'(aw_len - 1);
    assign m_axi_AWSIZE = 3'($clog2(BYTES));
    assign m_axi_AWBURST = 2'b01;                   // INCR
    assign m_axi_AWVALID = running && aw_beats < n_beats && 32'(aw_open) < OUTSTANDING;
    wire aw_go = m_axi_AWVALID && m_axi_AWREADY;

    // ---- the W FIFO ----
    logic [AXI_BITS-1:0] q_data [FD];
    logic [BYTES-1:0] q_strb [FD];
    logic [$clog2(FD)-1:0] q_wp, q_rp;
    logic [FW-1:0] q_cnt;
    assign m_axi_WDATA = q_data[q_rp];
    assign m_axi_WSTRB = q_strb[q_rp];
    assign m_axi_WVALID = running && q_cnt != 0 && w_beats < aw_beats;  // its burst's AW is out
    assign m_axi_WLAST = w_beats - w_bstart == w_len - 1;
    wire w_go = m_axi_WVALID && m_axi_WREADY;
    assign m_axi_BREADY = 1'b1;
    wire b_go = m_axi_BVALID;

    // ---- the read loop and the pack ----
    logic rd_v, rd_last;                            // a code read last cycle, the step's last one
    logic [TW-1:0] rd_dl;
    logic [LW-1:0] rd_bl;
    logic [AXI_BITS-1:0] beat;
    logic [BYTES-1:0] strb;
    wire push = rd_v && (32'(rd_bl) == PER - 1 || rd_last);
    wire rd_go = running && issued < n_codes && 32'(q_cnt) + 32'(push) < FD;
    assign fm_re = rd_go;
    assign fm_raddr = FA'(rbase + dw);
    logic [SB-1:0] code;
    assign code = SB'($signed(fm_rdata[32'(rd_dl) * WA +: WA]));  // sign-extended into its bytes
    logic [AXI_BITS-1:0] beat_n;
    logic [BYTES-1:0] strb_n;
    always_comb begin
        beat_n = beat;
        strb_n = strb;
        beat_n[32'(rd_bl) * SB +: SB] = code;
        strb_n[32'(rd_bl) * LB +: LB] = '1;
    end

    always_ff @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            busy <= 1'b0;
            wr_error <= 1'b0;
            rd_v <= 1'b0;
            q_cnt <= '0;
        end else if (start) begin
            running <= 1'b1;
            busy <= 1'b1;
            wr_error <= 1'b0;
            n_codes <= 32'(rows) * n;
            n_beats <= (32'(code0 % PER) + 32'(rows) * n + PER - 1) / PER;
            addr0 <= feat_addr + 64'(code0 / PER) * BYTES;
            wpr <= (n + T_IN - 1) / T_IN;
            rbase <= CLS * ((n + T_IN - 1) / T_IN);
            {issued, aw_beats, w_beats, w_bstart, dw, p, dl} <= '0;
            bl <= LW'(code0 % PER);
            aw_open <= '0;
            rd_v <= 1'b0;
            beat <= '0;
            strb <= '0;
            q_cnt <= '0;
            q_wp <= '0;
            q_rp <= '0;
        end else if (running) begin
            // read the code (d, p): H row p + CLS, word d / T_IN, lane d % T_IN; p inner
            rd_v <= rd_go;
            if (rd_go) begin
                rd_dl <= dl;
                rd_bl <= bl;
                rd_last <= issued + 1 == n_codes;
                issued <= issued + 1;
                bl <= bl + 1'b1;                    // PER lanes: wraps at the beat's end
                if (32'(p) + 1 != 32'(rows)) begin
                    p <= p + 1'b1;
                    rbase <= rbase + wpr;
                end else begin
                    p <= '0;
                    rbase <= CLS * wpr;
                    if (32'(dl) + 1 != T_IN) dl <= dl + 1'b1;
                    else begin
                        dl <= '0;
                        dw <= dw + 1;
                    end
                end
            end
            // pack the code read last cycle; a full (or the last) beat into the FIFO
            if (rd_v) begin
                if (push) begin
                    q_data[q_wp] <= beat_n;
                    q_strb[q_wp] <= strb_n;
                    q_wp <= q_wp + 1'b1;
                    beat <= '0;
                    strb <= '0;
                end else begin
                    beat <= beat_n;
                    strb <= strb_n;
                end
            end
            q_cnt <= q_cnt + FW'(push) - FW'(w_go);
            if (w_go) begin
                q_rp <= q_rp + 1'b1;
                w_beats <= w_beats + 1;
                if (m_axi_WLAST) w_bstart <= w_beats + 1;
            end
            if (aw_go) aw_beats <= aw_beats + aw_len;
            aw_open <= aw_open + OW'(aw_go) - OW'(b_go);
            if (b_go && m_axi_BRESP != 2'b00) wr_error <= 1'b1;
            // the last response: every beat written and every burst answered
            if (issued == n_codes && !rd_v && q_cnt == 0 && aw_beats == n_beats && w_beats == n_beats
                && aw_open == OW'(b_go)) begin
                running <= 1'b0;
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule

// The accelerator's on-chip feature maps (kernels.h backbone's img, X, H, O, F, QKV, HID; program.py
// BUFFERS): words of T_IN act codes (lane l at bits [l*WA +: WA]; row r's word w at address
// r * WPR + w, WPR = ceil(row width / T_IN), the same layout as kernels.h's fm_word arrays), behind
// two read ports (A, B) and one write port (W) that the sequencer points at a buffer per step (its
// src / dst ids). Every unit reads and writes the feature maps through these ports only; no unit
// holds a private copy. Reads are registered (data the cycle after the address); a write lands at
// the clock edge, with a strobe per code (for words a producer fills in parts).
//
// Storage: each buffer is NB banks (NB = RWN rounded up to a power of two), word w in bank w % NB at
// row w / NB (a cyclic partition: ARRAY_PARTITION cyclic in HLS terms), and each bank is one true
// dual-port block RAM (fm_ram.sv): port 1 reads for A, or for B when A is elsewhere; port 2 writes
// for W, or reads for B. A port moves a window of RWN consecutive words (address a: words a .. a +
// RWN - 1, for units that take more than T_IN codes a cycle: LayerNorm with more lanes than a word,
// a linear unit with T_OUT > T_IN, attention): RWN <= NB consecutive words lie in distinct banks, so
// a window at any address is one row of each bank, rotated by a % NB.
// Within one step a buffer sees at most two of the three ports (residual: A reads X, W writes X,
// B reads src; attention: A and B on QKV, W on O; GELU: A and W on HID, in place; the debug port:
// A, or W), which is what one dual-port RAM a bank serves; a cycle with A, B and W on one buffer
// is an error (simulation check below), as the sequencer never points an unused port at a buffer.
// Port B can also read the combine's gated sums (buffer id SUM_ID: the MoE block's output, already
// fitted to act, accel_combine.sv), so the residual after a MoE block adds them without a copy.
// Words past a buffer's end read as 0 and writes there are dropped.
// The LOGITS buffer (router logits: one token's E codes a word) is not here: accel_seq writes it
// from the linear engine and accel_router.sv reads it.
// The task heads (accel_heads.sv, hd_on): kernels.h's heads borrow QKV (the conv's band, the
// upsample's row 0), F (the upsample's row 1, the writer's source), HID (the cols) and H (the
// features) with both RAM ports of each at once (the upsample reads x0 and x1 of both rows in one
// cycle: four reads), more than A / B / W carry, so while hd_on the head owns those buffers' ports
// directly, one word at a time: QKV and F port 1 reads (hd_*_a1), port 2 reads or writes (hd_*_a2),
// HID port 2 writes, H port 1 reads; A / B / W reach the other buffers as usual (the sequencer points
// them nowhere then). The conv's linear step (hd_on low) reads HID over A and writes F over W.
module accel_fm #(
    parameter int T_IN = 16,
    parameter int WA = 32,
    parameter int RWN = 1,            // words a port moves a cycle
    parameter int D_WORDS = 260,      // n_tokens * ceil(n_embd / T_IN): X, H, O, F
    parameter int QKV_WORDS = 780,    // n_tokens * ceil(3 n_embd / T_IN)
    parameter int HID_WORDS = 1040,   // kernels.h HID_WORDS: MLP / expert hidden rows
    parameter int IMG_WORDS = 192,    // the image as im2col rows: n_patches * ceil(C p^2 / T_IN)
    // buffer ids (mtl_moe.program.BUFFERS)
    parameter int ID_IMG = 1,
    parameter int ID_X = 2,
    parameter int ID_H = 3,
    parameter int ID_O = 4,
    parameter int ID_F = 5,
    parameter int ID_QKV = 6,
    parameter int ID_HID = 7,
    parameter int ID_SUM = 10,
    localparam int NMAX0 = (QKV_WORDS > HID_WORDS) ? QKV_WORDS : HID_WORDS,
    localparam int NMAX = (NMAX0 > IMG_WORDS) ? NMAX0 : IMG_WORDS,
    localparam int WORDS_MAX = (NMAX > D_WORDS) ? NMAX : D_WORDS,
    localparam int FA = $clog2(WORDS_MAX),
    localparam int WB = T_IN * WA
) (
    input  logic clk,
    input  logic [3:0] a_buf,
    input  logic [FA-1:0] a_addr,
    output logic [RWN*WB-1:0] a_data,
    input  logic [3:0] b_buf,
    input  logic [FA-1:0] b_addr,
    output logic [RWN*WB-1:0] b_data,
    input  logic [WB-1:0] sum_data,   // accel_combine's fitted sum word at b_addr (combinational; one word)
    input  logic w_we,
    input  logic [3:0] w_buf,
    input  logic [FA-1:0] w_addr,
    input  logic [RWN*T_IN-1:0] w_strb,
    input  logic [RWN*WB-1:0] w_data,
    // the heads' direct ports (hd_on): a word each, data the cycle after the address
    input  logic hd_on,
    input  logic [FA-1:0] hd_qkv_a1,
    output logic [WB-1:0] hd_qkv_q1,
    input  logic [FA-1:0] hd_qkv_a2,
    input  logic hd_qkv_we,
    input  logic [T_IN-1:0] hd_qkv_strb,
    input  logic [WB-1:0] hd_qkv_d,
    output logic [WB-1:0] hd_qkv_q2,
    input  logic [FA-1:0] hd_f_a1,
    output logic [WB-1:0] hd_f_q1,
    input  logic [FA-1:0] hd_f_a2,
    input  logic hd_f_we,
    input  logic [T_IN-1:0] hd_f_strb,
    input  logic [WB-1:0] hd_f_d,
    output logic [WB-1:0] hd_f_q2,
    input  logic hd_hid_we,
    input  logic [FA-1:0] hd_hid_a,
    input  logic [T_IN-1:0] hd_hid_strb,
    input  logic [WB-1:0] hd_hid_d,
    input  logic [FA-1:0] hd_h_a,
    output logic [WB-1:0] hd_h_q
);
    localparam int LB = RWN > 1 ? $clog2(RWN) : 0;
    localparam int NB = 1 << LB;          // banks a buffer
    localparam int NBUF = 7;
    localparam int BUF_ID [NBUF] = '{ID_IMG, ID_X, ID_H, ID_O, ID_F, ID_QKV, ID_HID};
    localparam int BUF_WORDS [NBUF] = '{IMG_WORDS, D_WORDS, D_WORDS, D_WORDS, D_WORDS, QKV_WORDS, HID_WORDS};
    localparam int K_H = 2, K_F = 4, K_QKV = 5, K_HID = 6;  // their places in BUF_ID

    // bank j holds lane (j - a) mod NB of the window at address a: word a + that lane
    function automatic logic [FA-1:0] bank_lane(input logic [FA-1:0] a, input logic [FA-1:0] j);
        return (j - a) & FA'(NB - 1);
    endfunction

    localparam int BW = LB > 0 ? LB : 1;
    /* verilator lint_off UNUSEDSIGNAL */  // the word's bank: its low LB bits only
    function automatic logic [BW-1:0] bank_of(input logic [FA-1:0] w);  // w mod NB
        return NB > 1 ? BW'(w) : '0;
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    logic [NBUF-1:0] a_on, b_on, w_on, a_on_q, b_on_q;
    logic [FA-1:0] a_addr_q, b_addr_q;
    logic b_sum_q;
    logic [WB-1:0] q1 [NBUF][NB], q2 [NBUF][NB];

    for (genvar k = 0; k < NBUF; k++) begin : g_buf
        localparam int WORDS = BUF_WORDS[k];
        localparam int DEPTH = (WORDS + NB - 1) / NB;
        localparam int RA = DEPTH > 1 ? $clog2(DEPTH) : 1;
        assign a_on[k] = 32'(a_buf) == BUF_ID[k];
        assign b_on[k] = 32'(b_buf) == BUF_ID[k];
        assign w_on[k] = w_we && 32'(w_buf) == BUF_ID[k];
        for (genvar j = 0; j < NB; j++) begin : g_bank
            logic [FA-1:0] aw, bw, ww;
            logic [RA-1:0] p1_addr, p2_addr;
            logic [T_IN-1:0] strb;
            logic we;
            int li;
            assign aw = a_addr + bank_lane(a_addr, FA'(j));
            assign bw = b_addr + bank_lane(b_addr, FA'(j));
            assign ww = w_addr + bank_lane(w_addr, FA'(j));
            assign li = int'(bank_lane(w_addr, FA'(j)));
            // the heads' direct ports on QKV / F (both), H (port 1), HID (port 2)
            localparam bit D1 = k == K_QKV || k == K_F || k == K_H;
            localparam bit D2 = k == K_QKV || k == K_F || k == K_HID;
            logic [FA-1:0] d1, d2;
            logic dwe;
            logic [T_IN-1:0] dstrb;
            logic [WB-1:0] dd;
            assign d1 = k == K_QKV ? hd_qkv_a1 : k == K_F ? hd_f_a1 : hd_h_a;
            assign d2 = k == K_QKV ? hd_qkv_a2 : k == K_F ? hd_f_a2 : hd_hid_a;
            assign dwe = k == K_QKV ? hd_qkv_we : k == K_F ? hd_f_we : k == K_HID && hd_hid_we;
            assign dstrb = k == K_QKV ? hd_qkv_strb : k == K_F ? hd_f_strb : hd_hid_strb;
            assign dd = k == K_QKV ? hd_qkv_d : k == K_F ? hd_f_d : hd_hid_d;
            assign p1_addr = RA'(hd_on && D1 ? d1 >> LB : a_on[k] ? aw >> LB : bw >> LB);
            assign p2_addr = RA'(hd_on && D2 ? d2 >> LB : w_on[k] ? ww >> LB : bw >> LB);
            assign strb = hd_on && D2 ? dstrb : w_strb[li*T_IN +: T_IN];
            assign we = hd_on && D2 ? dwe && 32'(bank_of(d2)) == j && 32'(d2) < WORDS && dstrb != '0
                                    : w_on[k] && li < RWN && 32'(ww) < WORDS && strb != '0;
            fm_ram #(.WA(WA), .LANES(T_IN), .DEPTH(DEPTH)) ram (
                .clk, .p1_addr, .p1_q(q1[k][j]), .p2_addr, .p2_we(we), .p2_strb(strb),
                .p2_d(hd_on && D2 ? dd : w_data[li*WB +: WB]), .p2_q(q2[k][j]));
        end
    end

    always_ff @(posedge clk) begin
        a_on_q <= a_on;
        b_on_q <= b_on & ~(a_on & w_on);  // B has no port left when A and W hold both
        a_addr_q <= a_addr;
        b_addr_q <= b_addr;
        b_sum_q <= 32'(b_buf) == ID_SUM;
    end

    // the heads' reads: the addressed word's bank, zero past the buffer's end
    logic [FA-1:0] hq1_q, hq2_q, hf1_q, hf2_q, hh_q;
    always_ff @(posedge clk) {hq1_q, hq2_q, hf1_q, hf2_q, hh_q} <= {hd_qkv_a1, hd_qkv_a2, hd_f_a1, hd_f_a2, hd_h_a};
    assign hd_qkv_q1 = 32'(hq1_q) < QKV_WORDS ? q1[K_QKV][bank_of(hq1_q)] : '0;
    assign hd_qkv_q2 = 32'(hq2_q) < QKV_WORDS ? q2[K_QKV][bank_of(hq2_q)] : '0;
    assign hd_f_q1 = 32'(hf1_q) < D_WORDS ? q1[K_F][bank_of(hf1_q)] : '0;
    assign hd_f_q2 = 32'(hf2_q) < D_WORDS ? q2[K_F][bank_of(hf2_q)] : '0;
    assign hd_h_q = 32'(hh_q) < D_WORDS ? q1[K_H][bank_of(hh_q)] : '0;

    // window lane i: the bank holding word a + i, zero past the buffer's end; B is served by port 1
    // when A is on another buffer, else by port 2
    logic [WB-1:0] sum_q;
    always_ff @(posedge clk) sum_q <= sum_data;
    always_comb begin
        a_data = '0;
        b_data = '0;
        for (int i = 0; i < RWN; i++) begin
            logic [FA-1:0] aw, bw;
            aw = a_addr_q + FA'(i);
            bw = b_addr_q + FA'(i);
            for (int k = 0; k < NBUF; k++) begin
                if (a_on_q[k] && 32'(aw) < BUF_WORDS[k]) a_data[i*WB +: WB] = q1[k][bank_of(aw)];
                if (b_on_q[k] && 32'(bw) < BUF_WORDS[k]) b_data[i*WB +: WB] = a_on_q[k] ? q2[k][bank_of(bw)] : q1[k][bank_of(bw)];
            end
        end
        if (b_sum_q) b_data = (RWN*WB)'(sum_q);
    end

`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if ((a_on & b_on & w_on) != '0)
            $error("accel_fm: ports A, B and W on buffer %0d in one cycle (one dual-port RAM a bank)",
                   a_buf);
`endif
endmodule

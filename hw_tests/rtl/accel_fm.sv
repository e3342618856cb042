// The accelerator's on-chip feature maps (kernels.h backbone's img, X, H, O, F, QKV, HID; program.py
// BUFFERS): one RAM per buffer, words of T_IN act codes (lane l at bits [l*WA +: WA]; row r's word w
// at address r * WPR + w, WPR = ceil(row width / T_IN), the same layout as kernels.h's fm_word
// arrays), behind two read ports and one write port that the sequencer points at a buffer per step
// (its src / dst ids). Every unit reads and writes the feature maps through these ports only; no unit
// holds a private copy. Reads are registered (data the cycle after the address, BRAM-like); a
// write lands at the clock edge (per-lane strobes, for words a producer fills in parts).
// Within one step a buffer sees at most two of the three ports (residual: A and the write on X;
// attention: A and B on QKV, the write on O; gelu: A and the write on HID, in place), so each
// buffer maps to one true dual-port RAM (A/write share a port where both touch it).
// Port B can also read the combine's gated sums (buffer id SUM_ID: the MoE block's output, already
// fitted to act, accel_combine.sv), so the residual after a MoE block adds them without a copy.
// A port moves a window of RWN consecutive words (address a: words a .. a + RWN - 1), for units that
// take more than T_IN codes a cycle (LayerNorm with more lanes than a word, a linear unit with
// T_OUT > T_IN); they keep a window's address a multiple of RWN, so each buffer can be built as RWN
// banks of a cyclic partition (word w in bank w % RWN).
// The LOGITS buffer (router logits: one token's E codes a word) is not here: accel_seq writes it
// from the linear engine and accel_router.sv reads it.
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
    localparam int WB = T_IN * WA,
    localparam int DA = $clog2(D_WORDS), QA = $clog2(QKV_WORDS), HA = $clog2(HID_WORDS),
    localparam int IA = $clog2(IMG_WORDS)
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
    input  logic [RWN*WB-1:0] w_data
);
    logic [WB-1:0] mx [D_WORDS], mh [D_WORDS], mo [D_WORDS], mf [D_WORDS];
    logic [WB-1:0] mq [QKV_WORDS], mhid [HID_WORDS], mimg [IMG_WORDS];

    function automatic logic [WB-1:0] merge(input logic [WB-1:0] old, input logic [WB-1:0] nw,
                                            input logic [T_IN-1:0] strb);
        logic [WB-1:0] r;
        for (int l = 0; l < T_IN; l++) r[l*WA +: WA] = strb[l] ? nw[l*WA +: WA] : old[l*WA +: WA];
        return r;
    endfunction

    // a buffer's word at an address, 0 past its end or for a buffer id it does not hold
    function automatic logic [WB-1:0] rd(input logic [3:0] id, input logic [FA-1:0] a);
        logic [WB-1:0] v;
        v = '0;
        if (32'(id) == ID_X && 32'(a) < D_WORDS) v = mx[DA'(a)];
        if (32'(id) == ID_H && 32'(a) < D_WORDS) v = mh[DA'(a)];
        if (32'(id) == ID_O && 32'(a) < D_WORDS) v = mo[DA'(a)];
        if (32'(id) == ID_F && 32'(a) < D_WORDS) v = mf[DA'(a)];
        if (32'(id) == ID_QKV && 32'(a) < QKV_WORDS) v = mq[QA'(a)];
        if (32'(id) == ID_HID && 32'(a) < HID_WORDS) v = mhid[HA'(a)];
        if (32'(id) == ID_IMG && 32'(a) < IMG_WORDS) v = mimg[IA'(a)];
        return v;
    endfunction

    always_ff @(posedge clk) begin
        for (int i = 0; i < RWN; i++) begin
            logic [FA-1:0] wa;
            logic [WB-1:0] wd;
            logic [T_IN-1:0] ws;
            a_data[i*WB +: WB] <= rd(a_buf, a_addr + FA'(i));
            b_data[i*WB +: WB] <= 32'(b_buf) == ID_SUM ? (i == 0 ? sum_data : '0) : rd(b_buf, b_addr + FA'(i));
            wa = w_addr + FA'(i);
            wd = w_data[i*WB +: WB];
            ws = w_strb[i*T_IN +: T_IN];
            if (w_we && ws != '0) begin
                if (32'(w_buf) == ID_X && 32'(wa) < D_WORDS) mx[DA'(wa)] <= merge(mx[DA'(wa)], wd, ws);
                if (32'(w_buf) == ID_H && 32'(wa) < D_WORDS) mh[DA'(wa)] <= merge(mh[DA'(wa)], wd, ws);
                if (32'(w_buf) == ID_O && 32'(wa) < D_WORDS) mo[DA'(wa)] <= merge(mo[DA'(wa)], wd, ws);
                if (32'(w_buf) == ID_F && 32'(wa) < D_WORDS) mf[DA'(wa)] <= merge(mf[DA'(wa)], wd, ws);
                if (32'(w_buf) == ID_QKV && 32'(wa) < QKV_WORDS) mq[QA'(wa)] <= merge(mq[QA'(wa)], wd, ws);
                if (32'(w_buf) == ID_HID && 32'(wa) < HID_WORDS) mhid[HA'(wa)] <= merge(mhid[HA'(wa)], wd, ws);
                if (32'(w_buf) == ID_IMG && 32'(wa) < IMG_WORDS) mimg[IA'(wa)] <= merge(mimg[IA'(wa)], wd, ws);
            end
        end
    end
endmodule

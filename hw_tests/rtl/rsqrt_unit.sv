// Reciprocal square root of the LayerNorm: r = 1/sqrt(v) for a positive variance code v of ln_stat
// (mtl_moe/nonlinear.py `rsqrt`, mtl_moe/ARITHMETIC.md LayerNorm step 4):
//   leading one at bit L; e = L - F rounded down to even, so v = m * 2^e with m in [1, 4);
//   m on a K-fractional-bit grid (K = 62 - 2*EW - 2, as golden); 1/sqrt(m) from the table on [1, 4]
//   with linear interpolation; one rounding by EF + (K - STEP) + e/2 - OF bits to the output grid.
// Three register stages, one input per cycle. Parameters come from the hardware spec
// (mtl_moe.rtl.rsqrt_parameters); the table is a $readmemh file.
// `invalid`: v <= 0 (golden raises ValueError); `overflow`: the result does not fit the output type
// (golden raises for a WRAP type; with OUT_SAT the output is clamped and the flag still raised).
module rsqrt_unit #(
    parameter int W = 48,             // ln_stat width (signed input)
    parameter int F = 32,             // ln_stat fractional bits
    parameter int OW = 32,            // rsqrt width (output)
    parameter int OF = 21,            // rsqrt fractional bits
    parameter int OUT_SIGNED = 0,     // 1: the output type is signed
    parameter int OUT_ROUND = 1,      // output rounding: 0 TRN (floor), 1 RND (half up), 2 RND_CONV
    parameter int OUT_SAT = 0,        // 1: saturate; 0: wrap (and raise `overflow`)
    parameter int N = 97,             // table entries (1/sqrt(m) at m = 1 + k * 2^-STEP)
    parameter int STEP = 5,           // table step 2^-STEP
    parameter int EW = 18,            // table entry width (unsigned)
    parameter int EF = 17,            // table entry fractional bits
    parameter TABLE = "rsqrt_table.mem"
) (
    input  logic                 clk,
    input  logic                 rst,
    input  logic                 in_valid,
    input  logic signed [W-1:0]  v,
    output logic                 out_valid,
    output logic [OW-1:0]        y,
    output logic                 overflow,
    output logic                 invalid
);
    `include "fx_round.svh"
    localparam int K = 62 - 2 * EW - 2;           // m's fractional bits (golden: headroom for interp)
    localparam int R = (K > STEP) ? K - STEP : 0; // position bits below one table step
    localparam longint NM1 = longint'(N) - 64'sd1;
    localparam int IW = $clog2(N);                // table index width
    localparam int RW = (R > 0) ? R : 1;          // width of the position within one step
    localparam longint MAXC = OUT_SIGNED != 0 ? (64'sd1 <<< (OW - 1)) - 1 : (64'sd1 <<< OW) - 1;
    localparam longint MINC = OUT_SIGNED != 0 ? -(64'sd1 <<< (OW - 1)) : 64'sd0;

    logic [EW-1:0] tab [0:N-1];
    initial $readmemh(TABLE, tab);

    // stage 1: register the input
    logic signed [W-1:0] v1;
    logic val1;
    always_ff @(posedge clk) begin
        if (rst) val1 <= 1'b0;
        else begin
            val1 <= in_valid;
            v1 <= v;
        end
    end

    // leading-one normalisation: position in the table, and half the (even) exponent
    int lead, e, sh;
    longint vs, m, pos, idx;
    logic [RW-1:0] fr;
    always_comb begin
        vs = longint'(v1);
        lead = 0;
        for (int b = 0; b < W - 1; b++) if (v1[b]) lead = b;  // highest set bit (sign bit excluded)
        e = lead - F;
        e = e - (e & 1);                          // round down to even: m = v * 2^-e in [1, 4)
        sh = e + F - K;                           // m code = v >> sh (K fractional bits)
        m = (sh >= 0) ? (vs >>> sh) : (vs <<< -sh);
        pos = m - (64'sd1 <<< K);                 // relative to the table start (m = 1)
        if (R == 0) begin
            idx = pos <<< (STEP - K);
            if (idx > NM1) idx = NM1;
            fr = '0;
        end else begin
            idx = pos >>> R;
            if (idx > NM1 - 64'sd1) idx = NM1 - 64'sd1;
            fr = RW'(pos - (idx <<< R));
        end
    end

    // stage 2: register the table position
    logic [IW-1:0] idx2;
    logic [RW-1:0] fr2;
    int sft2;
    logic val2, bad2;
    always_ff @(posedge clk) begin
        if (rst) val2 <= 1'b0;
        else begin
            val2 <= val1;
            bad2 <= (vs <= 0);
            idx2 <= IW'(idx);
            fr2 <= fr;
            sft2 <= EF + R + (e >>> 1) - OF;        // the one rounding to the output grid
        end
    end

    // table read, linear interpolation, rounding
    longint t0, t1, t, q;
    int s;
    always_comb begin
        t0 = longint'(tab[idx2]);
        t1 = (R == 0) ? t0 : longint'(tab[IW'(idx2 + 1'b1)]);
        t = (t0 <<< R) + (t1 - t0) * longint'(fr2);
        s = (sft2 > 62) ? 62 : sft2;             // t < 2^(EW + R) < 2^61: rounds to 0 from 62 on
        q = shift_round(t, s, OUT_ROUND);
    end

    // stage 3: fit the output type and register
    always_ff @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else begin
            out_valid <= val2;
            invalid <= bad2;
            overflow <= !bad2 && ((q > MAXC) || (q < MINC));
            if (OUT_SAT != 0 && q > MAXC) y <= OW'(MAXC);
            else if (OUT_SAT != 0 && q < MINC) y <= OW'(MINC);
            else y <= OW'(q);
        end
    end
endmodule

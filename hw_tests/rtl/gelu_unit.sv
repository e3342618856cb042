// GELU unit: y = ReLU(x) - delta(|x|), delta from a table with linear interpolation
// (mtl_moe/nonlinear.py `gelu`, mtl_moe/ARITHMETIC.md). Two register stages, one input per cycle.
// Parameters come from the hardware spec (mtl_moe.rtl.gelu_parameters); the table is a $readmemh file.
module gelu_unit #(
    parameter int W = 32,             // act width (input and output)
    parameter int F = 22,             // act fractional bits
    parameter int OUT_ROUND = 0,      // output rounding: 0 TRN (floor), 1 RND (half up), 2 RND_CONV
    parameter int OUT_SAT = 0,        // 1: saturate; 0: wrap (and raise `overflow`)
    parameter int N = 177,            // table entries
    parameter int STEP = 5,           // table step 2^-STEP
    parameter int EW = 18,            // table entry width (unsigned)
    parameter int EF = 18,            // table entry fractional bits
    parameter TABLE = "gelu_table.mem"
) (
    input  logic                clk,
    input  logic                rst,
    input  logic                in_valid,
    input  logic signed [W-1:0] x,
    output logic                out_valid,
    output logic signed [W-1:0] y,
    output logic                overflow
);
    `include "fx_round.svh"
    localparam int SH = F - STEP;                 // position bits below one table step
    localparam longint NM1 = longint'(N) - 64'sd1; // last table index
    localparam int IW = $clog2(N);                // table index width
    localparam int R = (SH > 0) ? SH : 0;
    localparam longint LAST = (SH >= 0) ? (NM1 <<< SH)
                                        : ((NM1 + (64'sd1 <<< -SH) - 64'sd1) >>> -SH);  // ceil
    localparam int FRAC = EF + R;
    localparam int COMMON = (FRAC > F) ? FRAC : F;
    localparam int SHIFT = COMMON - F;            // the one rounding to the output grid
    localparam longint MAXC = (64'sd1 <<< (W - 1)) - 1;
    localparam longint MINC = -(64'sd1 <<< (W - 1));

    logic [EW-1:0] tab [0:N-1];
    initial $readmemh(TABLE, tab);

    // stage 1: register the input
    logic signed [W-1:0] x1;
    logic v1;
    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else begin
            v1 <= in_valid;
            x1 <= x;
        end
    end

    // combinational datapath on 64-bit codes, except the interpolation product at its real width
    // (table difference EW + 1 bits signed x fraction below 2^R): one 27x18 DSP48E2 multiply
    longint xs, a, a_in, idx, d, t0, t1, yv, q;
    logic signed [EW:0] dt;
    logic signed [R:0] frs;
    logic signed [EW+R+1:0] prod;
    always_comb begin
        dt = '0;
        frs = '0;
        prod = '0;
        xs = longint'(x1);
        a = (xs < 0) ? -xs : xs;
        a_in = (a < LAST) ? a : LAST;
        if (SH <= 0) begin
            idx = a_in <<< -SH;
            if (idx > NM1) idx = NM1;
            d = longint'(tab[idx[IW-1:0]]);
            t0 = 0; t1 = 0;
        end else begin
            idx = a_in >>> SH;
            if (idx > NM1 - 64'sd1) idx = NM1 - 64'sd1;
            t0 = longint'(tab[idx[IW-1:0]]);
            t1 = longint'(tab[IW'(idx + 64'sd1)]);
            dt = (EW+1)'(t1 - t0);
            frs = (R+1)'(a_in - (idx <<< SH));  // position within the step, < 2^R
            prod = dt * frs;
            d = (t0 <<< SH) + longint'(prod);
        end
        if (a >= LAST) d = 0;
        yv = (((xs > 0) ? xs : 64'sd0) <<< (COMMON - F)) - (d <<< (COMMON - FRAC));
        q = shift_round(yv, SHIFT, OUT_ROUND);  // round to the output grid
    end

    // stage 2: fit the output type and register
    always_ff @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else begin
            out_valid <= v1;
            overflow <= (q > MAXC) || (q < MINC);
            if (OUT_SAT != 0 && q > MAXC) y <= W'(MAXC);
            else if (OUT_SAT != 0 && q < MINC) y <= W'(MINC);
            else y <= W'(q);
        end
    end
endmodule

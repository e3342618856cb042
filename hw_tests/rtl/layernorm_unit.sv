// LayerNorm of one token row of D act codes (mtl_moe/golden.py `layer_norm`, ARITHMETIC.md
// §LayerNorm), bit-exact, one row at a time:
//   IN    accept D (x, γ, β) codes, one per cycle while in_ready (γ, β: bias codes of that feature);
//         sum x exactly;
//   MEAN  mean = floor(Σx / D) by the divider below (2 cycles);
//   CENT  one element per cycle: c = fit_act(x - mean) (kept), Σ shift(c·c, 2F - SF, TRN);
//   VAR   var = fit_ln(floor(Σ / D)) (2 cycles), v = fit_ln(var + EPS), EPS = max(1, eps code);
//   RSQRT r = rsqrt_unit(v) (3 cycles);
//   OUT   one element per cycle: n = rq(c·r, F + RF, act), y = rq(n·γ + β·2^F, F + BF, act).
// The next row is accepted once the last output has left (in_ready low meanwhile): no overlap of
// rows: a row occupies the unit for 3·D + 8 cycles, its first output 2·D + 9 cycles after its
// first input (counted as rsqrt_unit counts its 3).
// Exact floor division by D (any D >= 2): both dividends (Σx and the sum of squares) fit NB bits
// signed, |n| <= 2^(NB-1); q0 = floor(n·M / 2^NB) with M = floor(2^NB / D) + 1, so
// n·M/2^NB = n/D + n·δ/2^NB with 0 < δ <= 1: the error is at most 1/2, q0 is floor(n/D) - 1, itself
// or + 1, and one correction on the remainder n - q0·D (into [0, D)) fixes it.
// `overflow` (with each output): a WRAP type overflowed in this row (golden raises
// FixedOverflowError): the centred value, the variance, the rsqrt, or n, y of this element.
// SAT types clamp silently, as golden does.
module layernorm_unit #(
    parameter int D = 64,             // features per row
    parameter int W = 32,             // act width (x, c, n, y; signed)
    parameter int F = 22,             // act fractional bits
    parameter int A_ROUND = 0,        // act rounding: 0 TRN, 1 RND, 2 RND_CONV
    parameter int A_SAT = 0,          // act overflow: 1 saturate, 0 wrap (raise `overflow`)
    parameter int BW = 32,            // bias width (γ, β; signed)
    parameter int BF = 22,            // bias fractional bits
    parameter int SW = 48,            // ln_stat width (signed)
    parameter int SF = 32,            // ln_stat fractional bits
    parameter int S_SAT = 0,          // ln_stat overflow mode
    parameter int EPS = 1,            // max(1, ε on the ln_stat grid)
    parameter int RW = 32,            // rsqrt type and table: as rsqrt_unit (mtl_moe.rtl.rsqrt_parameters)
    parameter int RF = 21,
    parameter int R_SIGNED = 0,
    parameter int R_ROUND = 1,
    parameter int R_SAT = 0,
    parameter int N = 97,
    parameter int STEP = 5,
    parameter int EW = 18,
    parameter int EF = 17,
    parameter TABLE = "rsqrt_table.mem"
) (
    input  logic                 clk,
    input  logic                 rst,
    input  logic                 in_valid,
    output logic                 in_ready,
    input  logic signed [W-1:0]  x,
    input  logic signed [BW-1:0] gamma,
    input  logic signed [BW-1:0] beta,
    output logic                 out_valid,
    output logic signed [W-1:0]  y,
    output logic                 overflow
);
    `include "fx_round.svh"
    localparam int IW = (D > 1) ? $clog2(D) : 1;
    localparam logic [IW-1:0] LAST = IW'(D - 1);
    localparam int SH = 2 * F - SF;                                // square → ln_stat grid
    localparam int MW = W + $clog2(D);                             // |Σx| <= 2^(MW - 1)
    localparam int QW = 2 * W - SH + $clog2(D);                    // 0 <= Σ (c·c >> SH) <= 2^(QW - 2)
    localparam int NB = (MW > QW) ? MW : QW;                       // divider input width (<= 63)
    localparam int MB = NB - $clog2(D) + 2;                        // width of M = floor(2^NB / D) + 1
    localparam logic [64:0] M65 = ((65'd1 << NB) / 65'(D)) + 65'd1;
    localparam logic [MB-1:0] M = MB'(M65);
    localparam int CRW = (W + RW + 1 > 64) ? 64 : W + RW + 1;      // c·r (golden: below 2^62)
    localparam longint DL = longint'(D);
    localparam longint AMAX = (64'sd1 <<< (W - 1)) - 1, AMIN = -(64'sd1 <<< (W - 1));
    localparam longint SMAX = (64'sd1 <<< (SW - 1)) - 1, SMIN = -(64'sd1 <<< (SW - 1));

    typedef enum logic [3:0] {S_IN, S_MEAN_A, S_MEAN_B, S_CENT, S_VAR_A, S_VAR_B, S_EPS, S_RSQ, S_OUT}
        state_t;
    state_t state;
    logic [IW-1:0] idx;
    logic signed [W-1:0] xb [D];     // x, then c (overwritten in CENT)
    logic signed [BW-1:0] gb [D], bb [D];
    longint sum, sqsum, mean;
    logic signed [SW-1:0] var_eps;
    logic row_ovf;                   // a WRAP overflow in the row so far
    logic [RW-1:0] r;

    // exact floor division of div_n by D: q0 registered in *_A, corrected in *_B
    longint q0, rem, quot;
    logic signed [NB-1:0] div_n;
    logic signed [NB+MB:0] prod;
    always_comb begin
        div_n = NB'((state == S_MEAN_A || state == S_MEAN_B) ? sum : sqsum);
        prod = div_n * $signed({1'b0, M});
        rem = longint'(div_n) - q0 * DL;
        quot = (rem < 0) ? q0 - 1 : (rem >= DL) ? q0 + 1 : q0;
    end

    // CENT: centred value and its truncated square
    longint cd, sq;
    logic signed [W-1:0] cf;         // (a WRAP overflow keeps the low bits: the row is flagged)
    logic signed [2*W-1:0] cc;
    logic c_ovf;
    always_comb begin
        cd = longint'(xb[idx]) - mean;
        c_ovf = (cd > AMAX) || (cd < AMIN);
        cf = W'((A_SAT != 0 && cd > AMAX) ? AMAX : (A_SAT != 0 && cd < AMIN) ? AMIN : cd);
        cc = cf * cf;
        sq = shift_round(longint'(cc), SH, 0);
    end

    // VAR: the variance fitted to ln_stat, then + EPS fitted again
    longint vf, ve;
    logic signed [SW-1:0] vef;
    logic v_ovf, ve_ovf;
    always_comb begin
        v_ovf = (quot > SMAX) || (quot < SMIN);
        vf = (S_SAT != 0 && quot > SMAX) ? SMAX : (S_SAT != 0 && quot < SMIN) ? SMIN : quot;
        ve = vf + longint'(EPS);
        ve_ovf = ve > SMAX;
        vef = SW'((S_SAT != 0 && ve > SMAX) ? SMAX : ve);
    end

    logic r_valid, r_ovf, r_inv;
    logic [RW-1:0] r_y;
    rsqrt_unit #(.W(SW), .F(SF), .OW(RW), .OF(RF), .OUT_SIGNED(R_SIGNED), .OUT_ROUND(R_ROUND),
                 .OUT_SAT(R_SAT), .N(N), .STEP(STEP), .EW(EW), .EF(EF), .TABLE(TABLE)) u_rsqrt (
        .clk(clk), .rst(rst), .in_valid(state == S_EPS), .v(var_eps), .out_valid(r_valid), .y(r_y),
        .overflow(r_ovf), .invalid(r_inv));

    // OUT: normalise, scale and shift one element
    longint nq, yq;
    logic signed [CRW-1:0] cr;
    logic signed [W-1:0] nf, yf;
    logic signed [W+BW-1:0] ng;
    logic n_ovf, y_ovf;
    always_comb begin
        cr = xb[idx] * $signed({1'b0, r});
        nq = shift_round(longint'(cr), RF, A_ROUND);  // |c·r| < 2^62 (golden's bound)
        n_ovf = (nq > AMAX) || (nq < AMIN);
        nf = W'((A_SAT != 0 && nq > AMAX) ? AMAX : (A_SAT != 0 && nq < AMIN) ? AMIN : nq);
        ng = nf * gb[idx];
        yq = shift_round(longint'(ng) + (longint'(bb[idx]) <<< F), BF, A_ROUND);
        y_ovf = (yq > AMAX) || (yq < AMIN);
        yf = W'((A_SAT != 0 && yq > AMAX) ? AMAX : (A_SAT != 0 && yq < AMIN) ? AMIN : yq);
    end

    assign in_ready = (state == S_IN);

    always_ff @(posedge clk) begin
        out_valid <= 1'b0;
        if (rst) begin
            state <= S_IN;
            idx <= '0;
            sum <= 0;
        end else begin
            case (state)
                S_IN: if (in_valid) begin
                    xb[idx] <= x;
                    gb[idx] <= gamma;
                    bb[idx] <= beta;
                    sum <= sum + longint'(x);
                    idx <= (idx == LAST) ? '0 : idx + 1'b1;
                    if (idx == LAST) state <= S_MEAN_A;
                end
                S_MEAN_A: begin
                    q0 <= longint'(prod >>> NB);
                    state <= S_MEAN_B;
                end
                S_MEAN_B: begin
                    mean <= quot;
                    sqsum <= 0;
                    row_ovf <= 1'b0;
                    state <= S_CENT;
                end
                S_CENT: begin
                    xb[idx] <= cf;
                    sqsum <= sqsum + sq;
                    row_ovf <= row_ovf || (A_SAT == 0 && c_ovf);
                    idx <= (idx == LAST) ? '0 : idx + 1'b1;
                    if (idx == LAST) state <= S_VAR_A;
                end
                S_VAR_A: begin
                    q0 <= longint'(prod >>> NB);
                    state <= S_VAR_B;
                end
                S_VAR_B: begin
                    var_eps <= vef;
                    row_ovf <= row_ovf || (S_SAT == 0 && (v_ovf || ve_ovf));
                    state <= S_EPS;
                end
                S_EPS: state <= S_RSQ;
                S_RSQ: if (r_valid) begin
                    r <= r_y;
                    row_ovf <= row_ovf || (R_SAT == 0 && r_ovf) || r_inv;
                    state <= S_OUT;
                end
                default: begin  // S_OUT
                    out_valid <= 1'b1;
                    y <= yf;
                    overflow <= row_ovf || (A_SAT == 0 && (n_ovf || y_ovf));
                    idx <= (idx == LAST) ? '0 : idx + 1'b1;
                    if (idx == LAST) begin
                        state <= S_IN;
                        sum <= 0;
                    end
                end
            endcase
        end
    end
endmodule

// LayerNorm of one token row of D act codes (mtl_moe/golden.py `layer_norm`, ARITHMETIC.md
// §LayerNorm), bit-exact, one row at a time, L lanes (consecutive features) a beat: beat b of a row
// carries features b·L .. b·L + L - 1, lane l at bits [l*W +: W] of x, y (γ, β: [l*BW +: BW]);
// D % L == 0, B = D / L beats a pass:
//   IN    accept B beats of L (x, γ, β) codes, one beat per cycle while in_ready (γ, β: bias codes of
//         those features); sum the L x exactly into Σx each beat;
//   MEAN  mean = floor(Σx / D) by the divider below (2 cycles);
//   CENT  one beat per cycle: c = fit_act(x - mean) per lane (kept), the L values
//         shift(c·c, 2F - SF, TRN) summed into Σ;
//   VAR   var = fit_ln(floor(Σ / D)) (2 cycles), v = fit_ln(var + EPS), EPS = max(1, eps code);
//   RSQRT r = rsqrt_unit(v) (3 cycles);
//   OUT   one beat per cycle, per lane: n = rq(c·r, F + RF, act), y = rq(n·γ + β·2^F, F + BF, act).
// The divider and rsqrt_unit are shared by the lanes (used once per row); the element arithmetic
// (centring, square, normalise, affine) is replicated L times.
// The next row is accepted once the last output beat has left (in_ready low meanwhile): no overlap
// of rows: a row occupies the unit for 3·B + 8 cycles, its first output beat 2·B + 9 cycles after
// its first input beat (counted as rsqrt_unit counts its 3): mtl_moe.rtl.layernorm_timing(D, L).
// Exact floor division by D (any D >= 2): both dividends (Σx and the sum of squares) fit NB bits
// signed, |n| <= 2^(NB-1); q0 = floor(n·M / 2^NB) with M = floor(2^NB / D) + 1, so
// n·M/2^NB = n/D + n·δ/2^NB with 0 < δ <= 1: the error is at most 1/2, q0 is floor(n/D) - 1, itself
// or + 1, and one correction on the remainder n - q0·D (into [0, D)) fixes it.
// `overflow[l]` (with each output beat, per lane): a WRAP type overflowed in this row (golden raises
// FixedOverflowError): any centred value, the variance, the rsqrt, or n, y of lane l's element.
// SAT types clamp silently, as golden does.
module layernorm_unit #(
    parameter int D = 64,             // features per row
    parameter int L = 1,              // lanes: features per beat (D % L == 0)
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
    input  logic [L*W-1:0]       x,          // lane l: signed act code at [l*W +: W]
    input  logic [L*BW-1:0]      gamma,      // lane l: signed bias code at [l*BW +: BW]
    input  logic [L*BW-1:0]      beta,
    output logic                 out_valid,
    output logic [L*W-1:0]       y,
    output logic [L-1:0]         overflow    // per lane: the row's flag or this element's n, y
);
    `include "fx_round.svh"
    localparam int B = D / L;                                      // beats a pass
    localparam int IW = (B > 1) ? $clog2(B) : 1;
    localparam logic [IW-1:0] LAST = IW'(B - 1);
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

    initial begin
        if (L < 1 || D % L != 0)
            $error("layernorm_unit: L = %0d lanes must divide D = %0d", L, D);
    end

    typedef enum logic [3:0] {S_IN, S_MEAN_A, S_MEAN_B, S_CENT, S_VAR_A, S_VAR_B, S_EPS, S_RSQ, S_OUT}
        state_t;
    state_t state;
    logic [IW-1:0] idx;              // beat within the pass
    logic [L*W-1:0] xb [B];          // a beat of x, then of c (overwritten in CENT)
    logic [L*BW-1:0] gb [B], bb [B];
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

    // IN: the beat's L codes, summed exactly
    longint xsum;
    always_comb begin
        xsum = 0;
        for (int l = 0; l < L; l++) xsum = xsum + longint'($signed(x[l*W +: W]));
    end

    // CENT: per lane the centred value and its truncated square; the beat's squares summed
    longint sqbeat;
    logic [L*W-1:0] cf;              // (a WRAP overflow keeps the low bits: the row is flagged)
    logic c_ovf;                     // some lane's centred value overflowed
    always_comb begin
        sqbeat = 0;
        c_ovf = 1'b0;
        for (int l = 0; l < L; l++) begin
            longint cd;
            logic signed [W-1:0] cl;
            logic signed [2*W-1:0] cc;
            cd = longint'($signed(xb[idx][l*W +: W])) - mean;
            c_ovf = c_ovf || (cd > AMAX) || (cd < AMIN);
            cl = W'((A_SAT != 0 && cd > AMAX) ? AMAX : (A_SAT != 0 && cd < AMIN) ? AMIN : cd);
            cc = cl * cl;
            sqbeat = sqbeat + shift_round(longint'(cc), SH, 0);
            cf[l*W +: W] = cl;
        end
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

    // OUT: normalise, scale and shift the beat's L elements
    logic [L*W-1:0] yf;
    logic [L-1:0] e_ovf;             // per lane: n or y overflowed
    always_comb begin
        for (int l = 0; l < L; l++) begin
            longint nq, yq;
            logic signed [CRW-1:0] cr;
            logic signed [W-1:0] nf;
            logic signed [W+BW-1:0] ng;
            cr = $signed(xb[idx][l*W +: W]) * $signed({1'b0, r});
            nq = shift_round(longint'(cr), RF, A_ROUND);  // |c·r| < 2^62 (golden's bound)
            nf = W'((A_SAT != 0 && nq > AMAX) ? AMAX : (A_SAT != 0 && nq < AMIN) ? AMIN : nq);
            ng = nf * $signed(gb[idx][l*BW +: BW]);
            yq = shift_round(longint'(ng) + (longint'($signed(bb[idx][l*BW +: BW])) <<< F), BF, A_ROUND);
            e_ovf[l] = (nq > AMAX) || (nq < AMIN) || (yq > AMAX) || (yq < AMIN);
            yf[l*W +: W] = W'((A_SAT != 0 && yq > AMAX) ? AMAX : (A_SAT != 0 && yq < AMIN) ? AMIN : yq);
        end
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
                    sum <= sum + xsum;
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
                    sqsum <= sqsum + sqbeat;
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
                    overflow <= {L{row_ovf}} | ((A_SAT == 0) ? e_ovf : '0);
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

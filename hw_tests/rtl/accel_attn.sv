// Attention of one block (kernels.h attention_core, golden `attention` between the QKV and the
// projection linears) on an on-chip qkv buffer (T rows of 3D act codes: Q | K | V, head h at
// columns h*HD), in the kernel's order: per head, per group of P query rows, phase 0 reads the
// group's K beats (key j, beat b of LANES values: one a cycle, T x NB cycles) and forms the P
// scores q.k exactly (DOTW bits), each requantized to the score type and streamed into its row's
// softmax_unit.sv (running max m, exp_sum s, 1/s); after the softmax drains, phase 1 reads the V
// beats in the same order and accumulates p.v exactly (AVW bits), p = exp_neg(score - m) with the
// row's final max (golden recomputes it: the scores of the group's rows are kept, T per row); at the
// group's end o = rq(shift_round(acc, EF, TRN) * (1/s)) to act (golden `mul`) goes to the O buffer.
// Cycles per (head, group): 2 x T x NB + the softmax's 7 stages + 2 (mtl_moe.perf models
// 2 x T x ceil(HD / lanes) per group and head, attn_qk_softmax + attn_av).
module accel_attn #(
    parameter int T = 65,             // tokens
    parameter int HD = 32,            // head dim
    parameter int NH = 2,             // heads
    parameter int P = 4,              // query rows per group (attn_p)
    parameter int LANES = 8,          // head-dim values a cycle (attn_lanes)
    parameter int W = 32,             // act (signed), fractional bits, rounding, overflow
    parameter int F = 22,
    parameter int A_ROUND = 0,
    parameter int A_SAT = 0,
    parameter int DOTW = 64,          // exact q.k, exact p.v (mtl_moe.onchip.kernel_widths)
    parameter int AVW = 57,
    parameter int SC_ROUND = 0,       // the score type's rounding and overflow (width, frac: SM_W, SM_F)
    parameter int SC_SAT = 0,
    // softmax_unit.sv's (mtl_moe.rtl.softmax_parameters, prefixed SM_)
    parameter int SM_W = 32, parameter int SM_F = 22, parameter int SM_EW = 18, parameter int SM_EF = 17,
    parameter int SM_E_ROUND = 1, parameter int SM_E_SAT = 0, parameter int SM_SW = 32, parameter int SM_SF = 20,
    parameter int SM_S_ROUND = 0, parameter int SM_S_SAT = 0, parameter int SM_RW = 24, parameter int SM_RF = 23,
    parameter int SM_R_ROUND = 1, parameter int SM_R_SAT = 0, parameter int SM_LW = 18, parameter int SM_LF = 17,
    parameter int SM_LOG2E = 189097, parameter int SM_EN = 65, parameter int SM_ESTEP = 6,
    parameter int SM_ETW = 18, parameter int SM_ETF = 17, parameter int SM_RN = 65, parameter int SM_RSTEP = 6,
    parameter int SM_RTW = 18, parameter int SM_RTF = 17, parameter int SM_RK = 26,
    parameter SM_ETABLE = "softmax_exp.mem",
    parameter SM_RTABLE = "softmax_recip.mem",
    localparam int D = NH * HD,
    localparam int TA = (T > 1) ? $clog2(T) : 1
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    output logic done,
    output logic ovf,                 // a score, exp or output left its type (WRAP) in this run
    input  logic x_we,                // qkv row x_addr (3D act codes)
    input  logic [TA-1:0] x_addr,
    input  logic [3*D*W-1:0] x_data,
    input  logic [TA-1:0] rd_addr,    // O row rd_addr (D act codes)
    output logic [D*W-1:0] rd_y
);
    localparam int NB = (HD + LANES - 1) / LANES;
    localparam int NG = (T + P - 1) / P;
    // exp_neg on the score grid (as accel_router.sv's exp_of, softmax_unit.sv's stage 3)
    localparam int UW = SM_W + SM_LW, UF = SM_F + SM_LF, NW = UW - UF, ER = UF - SM_ESTEP;
    localparam int EIW = $clog2(SM_EN), VW = SM_ETW + ER, EPW = VW + 2, EBASE = SM_ETF + ER - SM_EF;
    localparam int ECW = ((VW > SM_EW) ? VW : SM_EW) + 1;
    localparam longint EMAX = (64'sd1 <<< SM_EW) - 1;
    localparam longint AMAX = (64'sd1 <<< (W - 1)) - 1, AMIN = -(64'sd1 <<< (W - 1));
    localparam longint SCMAX = (64'sd1 <<< (SM_W - 1)) - 1, SCMIN = -(64'sd1 <<< (SM_W - 1));
    localparam int QSH = 2 * F - SM_F;                  // q.k (2F fractional bits) -> score

    logic [SM_ETW-1:0] etab [0:SM_EN-1];
    initial $readmemh(SM_ETABLE, etab);

    logic [3*D*W-1:0] xmem [T];
    always_ff @(posedge clk) if (x_we) xmem[x_addr] <= x_data;
    logic [D*W-1:0] omem [T];
    assign rd_y = omem[rd_addr];

    /* verilator lint_off UNUSEDSIGNAL */  // a row index below T: the bits above TA are 0
    function automatic logic signed [W-1:0] av(input int row, input int col);
        return $signed(xmem[TA'(row)][col*W +: W]);
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    // shift right by s (>= 1) with a rounding mode (0 TRN, 1 RND, 2 RND_CONV) of a signed value
    function automatic longint rshift(input longint v, input int s, input int mode);
        longint q;
        logic rb, stk, up;
        q = v >>> s;
        rb = v[s-1];
        stk = (s > 1) ? |(v & ((64'sd1 <<< (s - 1)) - 1)) : 1'b0;
        up = (mode == 1) ? rb : (mode == 2) ? (rb & (stk | q[0])) : 1'b0;
        return q + longint'({63'b0, up});
    endfunction

    function automatic logic [SM_EW:0] exp_of(input logic [SM_W-1:0] a);
        logic [UW-1:0] u;
        logic [NW-1:0] n;
        logic [UF-1:0] fp;
        logic [SM_ETW-1:0] t0, t1;
        logic signed [SM_ETW:0] dt;
        logic signed [EPW-1:0] pr;
        logic [VW-1:0] v, q;
        logic rb, stk, up, big;
        int sh;
        u = UW'(a) * UW'(SM_LOG2E);
        n = NW'(u >> UF);
        fp = UF'(u);
        t0 = etab[EIW'(fp >> ER)];
        t1 = etab[EIW'(fp >> ER) + EIW'(1)];
        dt = $signed({1'b0, t1}) - $signed({1'b0, t0});
        pr = EPW'(dt) * $signed(EPW'(ER'(fp)));
        v = VW'($signed(EPW'({t0, ER'(0)})) + pr);
        sh = EBASE + ((int'(n) < SM_EF + 2) ? int'(n) : SM_EF + 2);
        q = v >> sh;
        rb = |(v & (VW'(1) << (sh - 1)));
        stk = |(v & ((VW'(1) << (sh - 1)) - VW'(1)));
        up = (SM_E_ROUND == 1) ? rb : (SM_E_ROUND == 2) ? (rb & (stk | q[0])) : 1'b0;
        q = q + VW'(up);
        if (int'(n) >= SM_EF + 2) q = '0;
        big = ECW'(q) > ECW'(EMAX);
        return {big, (big && SM_E_SAT != 0) ? SM_EW'(EMAX) : SM_EW'(q)};
    endfunction

    typedef enum logic [2:0] {A_IDLE, A_QK, A_DRAIN, A_AV, A_OUT} ast_t;
    ast_t st;
    int h, g, j, b, rows_g;
    logic signed [DOTW-1:0] dot [P];
    logic signed [AVW-1:0] acc [P][HD];
    logic signed [SM_W-1:0] sc [P][T];
    logic signed [SM_W-1:0] mrow [P];
    logic [SM_RW-1:0] rrow [P];
    logic sm_valid, sm_last;
    logic signed [SM_W-1:0] sm_x [P];
    /* verilator lint_off UNUSEDSIGNAL */  // the P units run in step: row 0's valid stands for all
    logic [P-1:0] sm_out;
    /* verilator lint_on UNUSEDSIGNAL */
    logic signed [SM_W-1:0] sm_m [P];
    logic [SM_RW-1:0] sm_r [P];
    logic [P-1:0] sm_ovf;
    /* verilator lint_off UNUSEDSIGNAL */  // the rows' exp_sum: 1/s is what the output uses
    logic [SM_SW-1:0] sm_s [P];
    /* verilator lint_on UNUSEDSIGNAL */

    for (genvar p = 0; p < P; p++) begin : g_sm
        softmax_unit #(.W(SM_W), .F(SM_F), .EW(SM_EW), .EF(SM_EF), .E_ROUND(SM_E_ROUND), .E_SAT(SM_E_SAT),
                       .SW(SM_SW), .SF(SM_SF), .S_ROUND(SM_S_ROUND), .S_SAT(SM_S_SAT), .RW(SM_RW), .RF(SM_RF),
                       .R_ROUND(SM_R_ROUND), .R_SAT(SM_R_SAT), .LW(SM_LW), .LF(SM_LF), .LOG2E(SM_LOG2E),
                       .EN(SM_EN), .ESTEP(SM_ESTEP), .ETW(SM_ETW), .ETF(SM_ETF), .RN(SM_RN), .RSTEP(SM_RSTEP),
                       .RTW(SM_RTW), .RTF(SM_RTF), .RK(SM_RK), .ETABLE(SM_ETABLE), .RTABLE(SM_RTABLE)) u (
            .clk, .rst, .in_valid(sm_valid), .x(sm_x[p]), .last(sm_last), .out_valid(sm_out[p]), .m(sm_m[p]),
            .s(sm_s[p]), .recip(sm_r[p]), .overflow(sm_ovf[p]));
    end

    always_ff @(posedge clk) begin
        done <= 1'b0;
        sm_valid <= 1'b0;
        sm_last <= 1'b0;
        if (rst) st <= A_IDLE;
        else case (st)
            A_IDLE: if (start) begin
                h <= 0;
                g <= 0;
                j <= 0;
                b <= 0;
                ovf <= 1'b0;
                rows_g <= (T < P) ? T : P;
                for (int p = 0; p < P; p++) dot[p] <= '0;
                st <= A_QK;
            end
            A_QK: begin  // K beat (j, b): the P rows' partial dots; at the row's last beat, the score
                for (int p = 0; p < P; p++) begin
                    logic signed [DOTW-1:0] d;
                    d = dot[p];
                    for (int l = 0; l < LANES; l++)
                        if (b * LANES + l < HD && p < rows_g)
                            d = d + DOTW'(av(g * P + p, h * HD + b * LANES + l))
                                  * DOTW'(av(j, D + h * HD + b * LANES + l));
                    if (b == NB - 1) begin
                        longint q;
                        logic big;
                        q = (QSH >= 1) ? rshift(longint'(d), QSH, SC_ROUND)  // a finer score grid: exact
                                       : longint'(d) <<< ((QSH >= 1) ? 0 : -QSH);
                        big = q > SCMAX || q < SCMIN;
                        if (big && SC_SAT != 0) q = q > SCMAX ? SCMAX : SCMIN;
                        if (big && SC_SAT == 0 && p < rows_g) ovf <= 1'b1;
                        sm_x[p] <= SM_W'(q);
                        sc[p][j] <= SM_W'(q);
                        dot[p] <= '0;
                    end else dot[p] <= d;
                end
                if (b == NB - 1) begin
                    sm_valid <= 1'b1;
                    sm_last <= j == T - 1;
                    b <= 0;
                    if (j == T - 1) begin
                        j <= 0;
                        st <= A_DRAIN;
                    end else j <= j + 1;
                end else b <= b + 1;
            end
            A_DRAIN: if (sm_out[0]) begin  // every row's m, 1/s (the P units run in step)
                for (int p = 0; p < P; p++) begin
                    mrow[p] <= sm_m[p];
                    rrow[p] <= sm_r[p];
                    if (sm_ovf[p] && p < rows_g) ovf <= 1'b1;
                    for (int d = 0; d < HD; d++) acc[p][d] <= '0;
                end
                st <= A_AV;
            end
            A_AV: begin  // V beat (j, b): acc += p * v, p = exp_neg(score - m)
                for (int p = 0; p < P; p++) begin
                    logic [SM_EW:0] e;
                    e = exp_of(SM_W'(mrow[p] - sc[p][j]));
                    if (e[SM_EW] && p < rows_g) ovf <= 1'b1;
                    for (int l = 0; l < LANES; l++)
                        if (b * LANES + l < HD)
                            acc[p][b * LANES + l] <= acc[p][b * LANES + l]
                                + AVW'($signed({1'b0, e[SM_EW-1:0]})) * AVW'(av(j, 2 * D + h * HD + b * LANES + l));
                end
                if (b == NB - 1) begin
                    b <= 0;
                    if (j == T - 1) begin
                        j <= 0;
                        st <= A_OUT;
                    end else j <= j + 1;
                end else b <= b + 1;
            end
            A_OUT: begin  // o = rq(shift_round(acc, EF, TRN) * r) to act, the group's rows into O
                for (int p = 0; p < P; p++)
                    if (p < rows_g)
                        for (int d = 0; d < HD; d++) begin
                            longint a, q;
                            logic big;
                            a = longint'(acc[p][d]) >>> SM_EF;
                            q = rshift(a * longint'({1'b0, rrow[p]}), SM_RF, A_ROUND);
                            big = q > AMAX || q < AMIN;
                            if (big && A_SAT != 0) q = q > AMAX ? AMAX : AMIN;
                            if (big && A_SAT == 0) ovf <= 1'b1;
                            omem[g * P + p][(h * HD + d) * W +: W] <= W'(q);
                        end
                for (int p = 0; p < P; p++) dot[p] <= '0;
                if (g == NG - 1) begin
                    g <= 0;
                    rows_g <= (T < P) ? T : P;
                    if (h == NH - 1) begin
                        done <= 1'b1;
                        st <= A_IDLE;
                    end else begin
                        h <= h + 1;
                        st <= A_QK;
                    end
                end else begin
                    g <= g + 1;
                    rows_g <= (T - (g + 1) * P < P) ? T - (g + 1) * P : P;
                    st <= A_QK;
                end
            end
            default: st <= A_IDLE;
        endcase
    end
endmodule

// Softmax statistics of one attention row (mtl_moe/golden.py `softmax_stats`, ARITHMETIC.md
// Attention steps 3-4): the row's scores stream in one key per cycle, in key order, `last` on the
// row's final key; per row out come the running max m, the running sum s of e^(x - m) (rescaled by
// e^(m_old - m_new) whenever the max moves) and 1/s (nonlinear.reciprocal). e^x is nonlinear.exp_neg:
// u = -x*log2(e), 2^-frac(u) from a table with linear interpolation, a shift by floor(u), one rounding.
// Rows go back to back (II = 1: a new key every cycle, no bubble between rows); 7 register stages.
// The only loop-carried paths are the max (stage 1) and s <- rq(s*rescale) + e (stage 4).
// Parameters come from the hardware spec (mtl_moe.rtl.softmax_parameters); tables are $readmemh files.
module softmax_unit #(
    parameter int W = 32,            // score width (signed)
    parameter int F = 22,            // score fractional bits
    parameter int EW = 18,           // exp width (unsigned, e^x in [0, 1])
    parameter int EF = 17,           // exp fractional bits
    parameter int E_ROUND = 1,       // roundings: 0 TRN (floor), 1 RND (half up), 2 RND_CONV
    parameter int E_SAT = 0,         // overflow: 1 saturate; 0 wrap (and raise `overflow`)
    parameter int SW = 32,           // exp_sum width (unsigned)
    parameter int SF = 20,           // exp_sum fractional bits
    parameter int S_ROUND = 0,
    parameter int S_SAT = 0,
    parameter int RW = 24,           // recip width (unsigned)
    parameter int RF = 23,           // recip fractional bits
    parameter int R_ROUND = 1,
    parameter int R_SAT = 0,
    parameter int LW = 18,           // log2(e) constant: width, fractional bits, code
    parameter int LF = 17,
    parameter int LOG2E = 189097,    // (LW <= 31)
    parameter int EN = 65,           // exp table: 2^-f at f = k*2^-ESTEP, k = 0..EN-1
    parameter int ESTEP = 6,
    parameter int ETW = 18,          // exp table entry width, fractional bits
    parameter int ETF = 17,
    parameter int RN = 65,           // reciprocal table: 1/m at m = 1 + k*2^-RSTEP, k = 0..RN-1
    parameter int RSTEP = 6,
    parameter int RTW = 18,
    parameter int RTF = 17,
    parameter int RK = 26,           // fractional bits of the normalised mantissa m in [1, 2)
    parameter ETABLE = "softmax_exp.mem",
    parameter RTABLE = "softmax_recip.mem"
) (
    input  logic                 clk,
    input  logic                 rst,
    input  logic                 in_valid,
    input  logic signed [W-1:0]  x,         // one score (a key of the row)
    input  logic                 last,      // x is the row's final key
    output logic                 out_valid, // one cycle per row
    output logic signed [W-1:0]  m,         // the row's max
    output logic [SW-1:0]        s,         // sum of e^(x - m), exp_sum codes
    output logic [RW-1:0]        recip,     // 1/s, recip codes
    output logic                 overflow   // a value of the row left its type (WRAP: wrapped)
);
    // exp: u = a*LOG2E (a = -x >= 0) has UF fractional bits; n = floor(u), f = frac(u)
    localparam int UW = W + LW;
    localparam int UF = F + LF;
    // exp -> exp_sum grid: left by ESL or right by ESR (rounded) bits
    localparam int ESL = (SF > EF) ? SF - EF : 0;
    localparam int ESR = (EF > SF) ? EF - SF : 0;
    localparam int ESW = EW + ESL;
    // the running sum: s*rescale (SF + EF fractional bits) rounded by EF bits, plus e
    localparam int PW = SW + EW;
    localparam int SUMW = ((PW > ESW) ? PW : ESW) + 1;
    localparam longint SMAX = (64'sd1 <<< SW) - 1;
    // reciprocal: s = m*2^e, 1/m from the table, shift by RC + e
    localparam int LZW = $clog2(SW);
    localparam int RR = RK - RSTEP;               // mantissa bits below one recip table step
    localparam int RIW = $clog2(RN);
    localparam int TW = RTW + RR;                 // interpolated 1/m, RTF + RR fractional bits
    localparam int RPW = TW + 2;
    localparam int RC = RTF + RR - SF - RF;       // 1/s = t * 2^-(RC + e) on the recip grid
    localparam int LSH = (RC < 0) ? -RC : 0;      // most left shift (e = 0)
    localparam int QW = TW + LSH + 1;
    localparam int RCW = ((QW > RW) ? QW : RW) + 1;
    localparam longint RMAX = (64'sd1 <<< RW) - 1;

    logic [ETW-1:0] etab [0:EN-1];
    logic [RTW-1:0] rtab [0:RN-1];
    initial $readmemh(ETABLE, etab);
    initial $readmemh(RTABLE, rtab);
`include "exp_neg.svh"

    // stage 1: register the key; the first key of a row restarts m and s
    logic v1, f1, l1, row_start;
    logic signed [W-1:0] x1;
    always_ff @(posedge clk) begin
        if (rst) begin
            v1 <= 1'b0;
            row_start <= 1'b1;
        end else begin
            v1 <= in_valid;
            f1 <= in_valid & row_start;
            if (in_valid) row_start <= last;
        end
        x1 <= x;
        l1 <= last;
    end

    // running max (loop-carried, one compare): m' = max(m, x); both exp arguments as a >= 0
    logic signed [W-1:0] m_run, mo, mn;
    logic [W-1:0] a_res, a_key;
    always_comb begin
        mo = f1 ? x1 : m_run;
        mn = (x1 > mo) ? x1 : mo;
        a_res = mn - mo;                           // m' - m in [0, 2^W): exact in W bits
        a_key = mn - x1;                           // m' - x
    end

    // stage 2: u = a*log2(e) for both exps (lane 0: the rescale e^(m - m'), lane 1: e^(x - m'))
    logic v2, f2, l2;
    logic signed [W-1:0] m2;
    logic [W-1:0] a2 [2];
    always_ff @(posedge clk) begin
        if (rst) v2 <= 1'b0;
        else begin
            v2 <= v1;
            if (v1) m_run <= mn;
        end
        f2 <= f1;
        l2 <= l1;
        m2 <= mn;
        a2[0] <= a_res;
        a2[1] <= a_key;
    end

    // stage 3: table, interpolation, shift by n with one rounding, fit to exp (exp_neg.svh)
    logic v3, f3, l3;
    logic signed [W-1:0] m3;
    logic [UW-1:0] u3 [2];
    always_ff @(posedge clk) begin
        if (rst) v3 <= 1'b0;
        else v3 <= v2;
        f3 <= f2;
        l3 <= l2;
        m3 <= m2;
        for (int g = 0; g < 2; g++) u3[g] <= UW'(a2[g]) * UW'(LOG2E);
    end

    logic [EW-1:0] ye [2];
    logic eovf;
    logic [ESW-1:0] es;
    always_comb begin
        eovf = 1'b0;
        for (int g = 0; g < 2; g++) begin
            /* verilator lint_off UNUSEDSIGNAL */  // e fits exp's EW bits: the 64-bit field's top is 0
            logic [64:0] r;
            /* verilator lint_on UNUSEDSIGNAL */
            r = exp_neg_u(longint'(u3[g]), UF, ESTEP, ETW, ETF, EF, EW, E_ROUND, E_SAT);  // exp_neg.svh
            eovf = eovf | r[64];
            ye[g] = r[EW-1:0];
        end
        // e on the exp_sum grid (exp_sum's rounding)
        begin
            logic [ESW-1:0] ex;
            logic rb, st, up;
            ex = ESW'(ye[1]) << ESL;
            es = ex >> ESR;
            rb = (ESR > 0) && |(ex & (ESW'(1) << (ESR - 1)));
            st = (ESR > 0) && |(ex & ((ESW'(1) << (ESR - 1)) - ESW'(1)));
            up = (S_ROUND == 1) ? rb : (S_ROUND == 2) ? (rb & (st | es[0])) : 1'b0;
            es = es + ESW'(up);
        end
    end

    // stage 4: s = rq(s*rescale, SF + EF, exp_sum) + e (loop-carried), fit exp_sum
    logic v4, f4, l4, eovf4, ovf_run;
    logic signed [W-1:0] m4;
    logic [EW-1:0] r4;
    logic [ESW-1:0] es4;
    logic [SW-1:0] s_run, s_new;
    logic ovf_row;
    always_ff @(posedge clk) begin
        if (rst) v4 <= 1'b0;
        else v4 <= v3;
        f4 <= f3;
        l4 <= l3;
        m4 <= m3;
        r4 <= ye[0];
        es4 <= es;
        eovf4 <= eovf;
    end

    always_comb begin
        logic [PW-1:0] pr, q;
        logic [SUMW-1:0] sum;
        logic rb, st, up, big;
        pr = PW'(f4 ? '0 : s_run) * PW'(r4);
        q = pr >> EF;                              // <= s: never overflows exp_sum
        rb = (EF > 0) && |(pr & (PW'(1) << (EF - 1)));
        st = (EF > 0) && |(pr & ((PW'(1) << (EF - 1)) - PW'(1)));
        up = (S_ROUND == 1) ? rb : (S_ROUND == 2) ? (rb & (st | q[0])) : 1'b0;
        q = q + PW'(up);
        sum = SUMW'(q) + SUMW'(es4);
        big = sum > SUMW'(SMAX);
        s_new = (big && S_SAT != 0) ? SW'(SMAX) : SW'(sum);
        ovf_row = (f4 ? 1'b0 : ovf_run) | eovf4 | big;
    end

    // stage 5: the row's result; leading one, normalise to m in [1, 2), table, interpolation
    logic v5, ovf5;
    logic signed [W-1:0] m5;
    logic [SW-1:0] s5;
    always_ff @(posedge clk) begin
        if (rst) v5 <= 1'b0;
        else begin
            v5 <= v4 & l4;
            if (v4) begin
                s_run <= s_new;
                ovf_run <= ovf_row;
            end
        end
        m5 <= m4;
        s5 <= s_new;
        ovf5 <= ovf_row;
    end

    logic [LZW-1:0] lead;
    logic [TW-1:0] t5;
    always_comb begin
        logic [RK-1:0] pos;
        logic [RTW-1:0] t0, t1;
        logic signed [RTW:0] dt;
        logic signed [RPW-1:0] pr;
        lead = '0;
        for (int i = 0; i < SW; i++) if (s5[i]) lead = LZW'(i);  // floor(log2 s), s >= 1.0
        pos = RK'({s5, RK'(0)} << (SW - 1 - int'(lead)) >> (SW - 1));  // RK bits below the lead
        t0 = rtab[RIW'(pos >> RR)];
        t1 = rtab[RIW'(pos >> RR) + RIW'(1)];
        dt = $signed({1'b0, t1}) - $signed({1'b0, t0});
        pr = RPW'(dt) * $signed(RPW'(RR'(pos)));
        t5 = TW'($signed(RPW'({t0, RR'(0)})) + pr);
    end

    // stage 6: shift 1/m by the exponent with recip's rounding, fit recip
    logic v6, ovf6;
    logic signed [W-1:0] m6;
    logic [SW-1:0] s6;
    logic [LZW-1:0] lead6;
    logic [TW-1:0] t6;
    always_ff @(posedge clk) begin
        if (rst) v6 <= 1'b0;
        else v6 <= v5;
        m6 <= m5;
        s6 <= s5;
        ovf6 <= ovf5;
        lead6 <= lead;
        t6 <= t5;
    end

    logic [RW-1:0] r_fit;
    logic r_big;
    always_comb begin
        logic [QW-1:0] q;
        logic rb, st, up;
        int sh;
        sh = RC + int'(lead6);
        rb = 1'b0;
        st = 1'b0;
        if (sh >= 1) begin
            q = QW'(t6) >> sh;
            rb = |(QW'(t6) & (QW'(1) << (sh - 1)));
            st = |(QW'(t6) & ((QW'(1) << (sh - 1)) - QW'(1)));
        end else q = QW'(t6) << (-sh);
        up = (R_ROUND == 1) ? rb : (R_ROUND == 2) ? (rb & (st | q[0])) : 1'b0;
        q = q + QW'(up);
        r_big = RCW'(q) > RCW'(RMAX);
        r_fit = (r_big && R_SAT != 0) ? RW'(RMAX) : RW'(q);
    end

    // stage 7: register the row's outputs
    always_ff @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else out_valid <= v6;
        m <= m6;
        s <= s6;
        recip <= r_fit;
        overflow <= ovf6 | r_big;
    end
endmodule

// The router_topk step of the layer program (kernels.h `router` after its logits, golden
// `gate_softmax` + `top_k`): per token the softmax over its E router logits and the top-k, then the
// per-expert token queues built from the choices (kernels.h `moe`'s queue loop, golden `moe`'s
// np.nonzero(idx == e): each queue in token order, a token at most once per expert).
//
// One token a cycle (kernels.h: PIPELINE II=1 over N_TOKENS), STAGES register stages:
//   1 read the token's E logits (one buffer word),   2 max over E,
//   3 E exps e_j = exp_neg(l_j - max) (nonlinear.exp_neg),
//   4 exact sum, requantized to exp_sum,             5 1/s (nonlinear.reciprocal),
//   6 E gates rq(e_j * r) (golden mul to gate),      7 top-k (topk_gate.sv, ties to the lower expert),
// and the queue append in the cycle the choices leave top-k. Cycles start -> done: rows + STAGES
// (mtl_moe.perf step_cost "router_topk"). Tables: the softmax unit's ($readmemh).
module accel_router #(
    parameter int E = 8,              // experts
    parameter int K = 2,              // top-k
    parameter int LW = 32,            // router_logit width (signed), fractional bits
    parameter int LFB = 22,
    parameter int EW = 18,            // exp (unsigned, in [0, 1])
    parameter int EF = 17,
    parameter int E_ROUND = 1,
    parameter int E_SAT = 0,
    parameter int SW = 32,            // exp_sum
    parameter int SF = 20,
    parameter int S_ROUND = 0,
    parameter int S_SAT = 0,
    parameter int RW = 24,            // recip
    parameter int RF = 23,
    parameter int R_ROUND = 1,
    parameter int R_SAT = 0,
    parameter int GW = 18,            // gate
    parameter int GF = 17,
    parameter int G_ROUND = 1,
    parameter int G_SAT = 0,
    parameter int LGW = 18,           // log2(e) constant
    parameter int LGF = 17,
    parameter int LOG2E = 189097,
    parameter int EN = 65,            // exp table (2^-f), reciprocal table (1/m), as softmax_unit.sv
    parameter int ESTEP = 6,
    parameter int ETW = 18,
    parameter int ETF = 17,
    parameter int RN = 65,
    parameter int RSTEP = 6,
    parameter int RTW = 18,
    parameter int RTF = 17,
    parameter int RK = 26,
    parameter ETABLE = "softmax_exp.mem",
    parameter RTABLE = "softmax_recip.mem",
    parameter int ROWS_MAX = 256,     // tokens
    parameter int STAGES = 7,         // mtl_moe.rtl.ROUTER_STAGES (checked against this pipeline)
    parameter int IW = (E > 1) ? $clog2(E) : 1
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [15:0] rows,
    output logic done,
    // the logits, one word of E codes per token (expert j at bits [j*LW +: LW]) in the caller's
    // LOGITS buffer: the token read this cycle, its word the next (a registered read)
    output logic [15:0] x_raddr,
    input  logic [E*LW-1:0] x_rdata,
    // each token's choices as they leave top-k
    output logic out_valid,
    output logic [15:0] out_token,
    output logic [K*IW-1:0] out_idx,
    output logic [K*GW-1:0] out_gate,
    output logic out_ovf,             // a gate (or exp, exp_sum, recip) of this token left its type
    // the queues: q_len[e] tokens of expert e; entry q_index of expert q_expert = (token, slot, gate)
    output logic [E*16-1:0] q_len,
    input  logic [IW-1:0] q_expert,
    input  logic [$clog2(ROWS_MAX)-1:0] q_index,
    output logic [15:0] q_token,
    output logic [7:0] q_slot,
    output logic [GW-1:0] q_gate
);
    localparam int XA = $clog2(ROWS_MAX);
    localparam int UW = LW + LGW;                   // u = a * log2(e) of exp_of, UF fractional bits
    localparam int UF = LFB + LGF;
    localparam int XW = EW + $clog2(E + 1);         // the exact sum of E exps
    localparam int SL = (SF > EF) ? SF - EF : 0;    // exp grid -> exp_sum grid
    localparam int SR = (EF > SF) ? EF - SF : 0;
    localparam int SXW = ((XW + SL > SW) ? XW + SL : SW) + 1;
    localparam longint SMAX = (64'sd1 <<< SW) - 1;
    localparam int LZW = $clog2(SW);
    localparam int RR = RK - RSTEP;
    localparam int RIW = $clog2(RN);
    localparam int TW = RTW + RR;
    localparam int RPW = TW + 2;
    localparam int RC = RTF + RR - SF - RF;
    localparam int LSH = (RC < 0) ? -RC : 0;
    localparam int QW = TW + LSH + 1;
    localparam int RCW = ((QW > RW) ? QW : RW) + 1;
    localparam longint RMAX = (64'sd1 <<< RW) - 1;
    localparam int GSH = EF + RF - GF;              // e*r -> gate grid (right shift, >= 1)
    localparam int GPW = EW + RW;
    localparam longint GMAX = (64'sd1 <<< GW) - 1;

    initial begin
        if (STAGES != 7) $error("accel_router: STAGES = %0d, this pipeline has 7", STAGES);
        if (GSH < 1) $error("accel_router: the gate grid must be coarser than exp x recip");
    end

    logic [ETW-1:0] etab [0:EN-1];
    logic [RTW-1:0] rtab [0:RN-1];
    initial $readmemh(ETABLE, etab);
    initial $readmemh(RTABLE, rtab);


    function automatic logic [LW-1:0] lg(input logic [E*LW-1:0] w, input int j);
        return w[j*LW +: LW];
    endfunction

    // exp_neg of a = max - l >= 0 (nonlinear.exp_neg, the arithmetic of exp_neg.svh), overflow flag
`include "exp_neg.svh"
    function automatic logic [EW:0] exp_of(input logic [LW-1:0] a);
        /* verilator lint_off UNUSEDSIGNAL */  // e fits exp's EW bits: the 64-bit field's top is 0
        logic [64:0] r;
        /* verilator lint_on UNUSEDSIGNAL */
        r = exp_neg_u(longint'(UW'(a) * UW'(LOG2E)), UF, ESTEP, ETW, ETF, EF, EW, E_ROUND, E_SAT);
        return {r[64], r[EW-1:0]};
    endfunction

    // ---- the pipeline: valid and token index per stage ----
    logic running;
    logic [15:0] feed, total;
    logic v1, v2, v3, v4, v5, v6;
    logic [15:0] t1_, t2_, t3_, t4_, t5_, t6_, t7_;
    logic [E*LW-1:0] w2;
    assign x_raddr = feed;
    assign w2 = x_rdata;
    logic [LW-1:0] l2 [E];
    logic [LW-1:0] mx2;
    logic [EW-1:0] e3 [E], e4 [E], e5 [E];
    logic o3, o4, o5, o6;
    logic [SW-1:0] s4;
    logic [RW-1:0] r5;
    logic [E*GW-1:0] g6;

    // stage 2 (combinational on w2): max over the E logits, lowest index first
    logic [LW-1:0] mx_c;
    always_comb begin
        mx_c = lg(w2, 0);
        for (int j = 1; j < E; j++) if ($signed(lg(w2, j)) > $signed(mx_c)) mx_c = lg(w2, j);
    end

    // stage 3: E exps
    logic [EW-1:0] e_c [E];
    logic eo_c;
    always_comb begin
        eo_c = 1'b0;
        for (int j = 0; j < E; j++) begin
            logic [EW:0] r;
            r = exp_of(mx2 - l2[j]);  // max - l in [0, 2^LW): exact in LW bits
            e_c[j] = r[EW-1:0];
            eo_c = eo_c | r[EW];
        end
    end

    // stage 4: s = requantize(sum e, EF -> exp_sum)
    logic [SW-1:0] s_c;
    logic so_c;
    always_comb begin
        logic [SXW-1:0] x, q;
        logic rb, stk, up;
        x = '0;
        for (int j = 0; j < E; j++) x = x + SXW'(e3[j]);
        x = x << SL;
        q = x >> SR;
        rb = (SR > 0) && |(x & (SXW'(1) << (SR - 1)));
        stk = (SR > 0) && |(x & ((SXW'(1) << (SR - 1)) - SXW'(1)));
        up = (S_ROUND == 1) ? rb : (S_ROUND == 2) ? (rb & (stk | q[0])) : 1'b0;
        q = q + SXW'(up);
        so_c = q > SXW'(SMAX);
        s_c = (so_c && S_SAT != 0) ? SW'(SMAX) : SW'(q);
    end

    // stage 5: r = reciprocal(s) (nonlinear.reciprocal; softmax_unit.sv's stages 5-6 in one)
    logic [RW-1:0] r_c;
    logic ro_c;
    always_comb begin
        logic [LZW-1:0] lead;
        logic [RK-1:0] pos;
        logic [RTW-1:0] t0, t1;
        logic signed [RTW:0] dt;
        logic signed [RPW-1:0] pr;
        logic [TW-1:0] t;
        logic [QW-1:0] q;
        logic rb, stk, up;
        int sh;
        lead = '0;
        for (int i = 0; i < SW; i++) if (s4[i]) lead = LZW'(i);
        pos = RK'({s4, RK'(0)} << (SW - 1 - int'(lead)) >> (SW - 1));
        t0 = rtab[RIW'(pos >> RR)];
        t1 = rtab[RIW'(pos >> RR) + RIW'(1)];
        dt = $signed({1'b0, t1}) - $signed({1'b0, t0});
        pr = RPW'(dt) * $signed(RPW'(RR'(pos)));
        t = TW'($signed(RPW'({t0, RR'(0)})) + pr);
        sh = RC + int'(lead);
        rb = 1'b0;
        stk = 1'b0;
        if (sh >= 1) begin
            q = QW'(t) >> sh;
            rb = |(QW'(t) & (QW'(1) << (sh - 1)));
            stk = |(QW'(t) & ((QW'(1) << (sh - 1)) - QW'(1)));
        end else q = QW'(t) << (-sh);
        up = (R_ROUND == 1) ? rb : (R_ROUND == 2) ? (rb & (stk | q[0])) : 1'b0;
        q = q + QW'(up);
        ro_c = RCW'(q) > RCW'(RMAX);
        r_c = (ro_c && R_SAT != 0) ? RW'(RMAX) : RW'(q);
    end

    // stage 6: gates g_j = requantize(e_j * r, EF + RF -> gate)
    logic [E*GW-1:0] g_c;
    logic go_c;
    always_comb begin
        go_c = 1'b0;
        for (int j = 0; j < E; j++) begin
            logic [GPW-1:0] p, q;
            logic rb, stk, up, big;
            p = GPW'(e5[j]) * GPW'(r5);
            q = p >> GSH;
            rb = |(p & (GPW'(1) << (GSH - 1)));
            stk = |(p & ((GPW'(1) << (GSH - 1)) - GPW'(1)));
            up = (G_ROUND == 1) ? rb : (G_ROUND == 2) ? (rb & (stk | q[0])) : 1'b0;
            q = q + GPW'(up);
            big = q > GPW'(GMAX);
            go_c = go_c | big;
            g_c[j*GW +: GW] = (big && G_SAT != 0) ? GW'(GMAX) : GW'(q);
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            {v1, v2, v3, v4, v5, v6} <= '0;
        end else begin
            v1 <= running;                       // stage 1: the buffer read
            if (running) begin
                t1_ <= feed;
                feed <= feed + 1;
                if (feed == total - 1) running <= 1'b0;
            end
            if (start) begin
                running <= rows != 0;
                feed <= '0;
                total <= rows;
            end
            v2 <= v1;                            // stage 2: the max
            v3 <= v2;
            v4 <= v3;
            v5 <= v4;
            v6 <= v5;
        end
        t2_ <= t1_;
        for (int j = 0; j < E; j++) l2[j] <= lg(w2, j);
        mx2 <= mx_c;
        t3_ <= t2_;                              // stage 3: exps
        e3 <= e_c;
        o3 <= eo_c;
        t4_ <= t3_;                              // stage 4: sum
        s4 <= s_c;
        e4 <= e3;
        o4 <= o3 | so_c;
        t5_ <= t4_;                              // stage 5: reciprocal
        r5 <= r_c;
        e5 <= e4;
        o5 <= o4 | ro_c;
        t6_ <= t5_;                              // stage 6: gates (top-k is stage 7)
        g6 <= g_c;
        o6 <= o5 | go_c;
        t7_ <= t6_;
    end

    logic tk_valid;
    logic [K*IW-1:0] tk_idx;
    logic [K*GW-1:0] tk_val;
    logic o7;
    topk_gate #(.E(E), .K(K), .WG(GW), .IW(IW)) topk (
        .clk, .rst, .in_valid(v6), .gates(g6), .out_valid(tk_valid), .idx(tk_idx), .val(tk_val));
    always_ff @(posedge clk) o7 <= o6;

    assign out_valid = tk_valid;
    assign out_token = t7_;
    assign out_idx = tk_idx;
    assign out_gate = tk_val;
    assign out_ovf = o7;

    // the queues: the choices append (token, slot) to their experts' queues (distinct experts)
    logic [15:0] qtok [E][ROWS_MAX];
    logic [7:0] qslot [E][ROWS_MAX];
    logic [GW-1:0] qgate [E][ROWS_MAX];
    logic [15:0] qn [E];
    always_ff @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            for (int e = 0; e < E; e++) qn[e] <= '0;
        end else begin
            if (start) for (int e = 0; e < E; e++) qn[e] <= '0;
            if (start && rows == 0) done <= 1'b1;
            if (tk_valid) begin
                for (int k = 0; k < K; k++) begin
                    logic [IW-1:0] ex;
                    ex = tk_idx[k*IW +: IW];
                    qtok[ex][XA'(qn[ex])] <= t7_;
                    qslot[ex][XA'(qn[ex])] <= 8'(k);
                    qgate[ex][XA'(qn[ex])] <= tk_val[k*GW +: GW];
                    qn[ex] <= qn[ex] + 16'd1;
                end
                if (t7_ == total - 1) done <= 1'b1;
            end
        end
    end
    always_comb for (int e = 0; e < E; e++) q_len[e*16 +: 16] = qn[e];
    assign q_token = qtok[q_expert][q_index];
    assign q_slot = qslot[q_expert][q_index];
    assign q_gate = qgate[q_expert][q_index];
endmodule

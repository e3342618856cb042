// Attention of one block (kernels.h attention_core, golden `attention` between the QKV and the
// projection linears) on the feature-map bank (accel_fm.sv; words of T_IN act codes, lane l at bits
// [l*W +: W]): it reads the QKV buffer (row t's word w at t*WPR + w, WPR = ceil(3D / T_IN); Q | K | V,
// head h at columns h*HD of each third) and writes the O buffer (WPO = ceil(D / T_IN) words a row).
//
// Work: tiles k = (head h, group g of P query rows) in kernels.h's order (per head, per group). A
// tile's QK phase reads its T x NB K beats (key j, beat b: LANES values of columns D + h*HD +
// b*LANES, one beat a cycle on port fm, RW = LANES / T_IN words a read when LANES > T_IN, else the
// beat's lanes of one word) and forms the P scores q.k exactly (DOTW bits), each requantized to the
// score type and streamed into its row's softmax_unit.sv (running max m, exp_sum s, 1/s). Its AV
// phase reads the V beats in the same order and accumulates p.v exactly (AVW bits), p =
// exp_neg(score - m) with the row's final max (exp_neg.svh; golden recomputes it: the tile's scores
// are kept, T per row). Then o = rq(shift_round(acc, EF, TRN) * (1/s)) to act (golden `mul`).
//
// Schedule (one K/V beat read a cycle, the port is the limit): the phases run back to back as
//     QK(0) QK(1) AV(0) QK(2) AV(1) ... QK(N-1) AV(N-2) AV(N-1)       (N = NH x ceil(T / P) tiles)
// so the softmax's 7-stage drain of tile k hides behind QK(k+1) (kernels.h's attn_qk / attn_softmax /
// attn_av are DATAFLOW processes: the next group's Q.K^T runs while this group's statistics drain).
// Hence two of each per-tile store (scores sc, max m, Q rows, A.V sums) and three of 1/s (the
// writer of tile k reads it while the statistics of tile k + 2 come in). Beside the
// beats: the Q rows of the next tile load on port fm2 (P x ceil(HD / T_IN) words) while the current
// tile computes, and the finished tile's O words go out one a cycle (wstrb: the head's lanes) while
// the next phases run. A phase starts only when what it needs is there (its Q rows, its statistics,
// its stores free), so the order stays exact even where the overlap does not fit.
// Cycles start -> done: 2 x N x T x NB (mtl_moe.perf attn_qk_softmax + attn_av: the beats) + the
// first tile's Q words (its rows x the head's words; nothing to overlap them with) + the last tile's
// O words + 7 (start, the loader's select, the read latency, the first phase's select; the last
// beat's MACs, the writer's select, done), where no phase waits for its inputs (tiles of T x NB
// cycles longer than a tile's Q load and O writes: the demo's 17,697 = 17,680 + 8 + 2 + 7).
// Read ports are BRAM-like: address (combinational from the schedule's registers) in one cycle, data
// the next. Unsupported (elaboration error): LANES not dividing HD, or neither of LANES, T_IN
// dividing the other (a beat would straddle words).
module accel_attn #(
    parameter int T = 65,             // tokens
    parameter int HD = 32,            // head dim
    parameter int NH = 2,             // heads
    parameter int P = 4,              // query rows per group (attn_p)
    parameter int LANES = 8,          // head-dim values a cycle (attn_lanes)
    parameter int T_IN = 16,          // act codes per feature-map word
    parameter int FA = $clog2(T * ((3 * NH * HD + T_IN - 1) / T_IN)),  // feature-map address bits
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
    localparam int RW = (LANES > T_IN) ? LANES / T_IN : 1  // words a K/V read returns
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    output logic done,
    output logic ovf,                 // a score, exp or output left its type (WRAP) in this run
    // QKV: K and V beats, RW consecutive words a read (address aligned to RW), word r at [r*T_IN*W +: ]
    output logic fm_re,
    output logic [FA-1:0] fm_raddr,
    input  logic [RW*T_IN*W-1:0] fm_rdata,
    // QKV: Q rows, one word a read
    output logic fm2_re,
    output logic [FA-1:0] fm2_raddr,
    input  logic [T_IN*W-1:0] fm2_rdata,
    // O: one word a cycle, the head's lanes strobed
    output logic fm_we,
    output logic [FA-1:0] fm_waddr,
    output logic [T_IN-1:0] fm_wstrb,
    output logic [T_IN*W-1:0] fm_wdata
);
    localparam int D = NH * HD;
    localparam int WPR = (3 * D + T_IN - 1) / T_IN;     // QKV words a row
    localparam int WPO = (D + T_IN - 1) / T_IN;         // O words a row
    localparam int NB = HD / LANES;                     // beats of a head row
    localparam int G = (T + P - 1) / P;
    localparam int N = NH * G;                          // tiles
    localparam int UW = SM_W + SM_LW, UF = SM_F + SM_LF;  // u = (m - score) * log2(e), exp_neg.svh
    localparam longint AMAX = (64'sd1 <<< (W - 1)) - 1, AMIN = -(64'sd1 <<< (W - 1));
    localparam longint SCMAX = (64'sd1 <<< (SM_W - 1)) - 1, SCMIN = -(64'sd1 <<< (SM_W - 1));
    localparam int QSH = 2 * F - SM_F;                  // q.k (2F fractional bits) -> score

    if (HD % LANES != 0) begin : g_bad_lanes
        $error("accel_attn: LANES = %0d must divide the head dim %0d", LANES, HD);
    end
    if (T_IN % LANES != 0 && LANES % T_IN != 0) begin : g_bad_words
        $error("accel_attn: LANES = %0d and T_IN = %0d: one must divide the other", LANES, T_IN);
    end
    if (UW > 62) begin : g_bad_exp
        $error("accel_attn: exp_neg's u needs %0d bits, at most 62", UW);
    end

    logic [SM_ETW-1:0] etab [0:SM_EN-1];
    initial $readmemh(SM_ETABLE, etab);
`include "fx_round.svh"
`include "exp_neg.svh"

    function automatic int rows_of(input int g);  // query rows of group g
        rows_of = (T - g * P < P) ? T - g * P : P;
    endfunction

    // ---- per-tile stores, two of each (tile k in slot k % 2) ----
    // q and acc are packed (flip-flops): as unpacked arrays Yosys takes them for two-word memories
    // with one write port per lane and row (144 on the demo), which its memory passes cannot finish
    logic [1:0][P-1:0][HD-1:0][W-1:0] q;
    logic signed [SM_W-1:0] sc [2][P][T];
    logic signed [SM_W-1:0] mr [2][P];
    logic [SM_RW-1:0] rr [3][P];                       // 1/s: tile k in slot k % 3 (the writer's lag)
    logic [1:0][P-1:0][HD-1:0][AVW-1:0] acc;
    int rows_s [2];

    logic running;
    logic ovf_c, ovf_w;               // the flag of the schedule's block, of the writer's
    assign ovf = ovf_c | ovf_w;
    logic signed [DOTW-1:0] dot [P];
    int qn, an, qh, qg, ah, ag;      // QK / AV phases started; the tile each starts next
    int qld, qcd, smc, avd, wk;      // tiles: Q loaded, QK computed, statistics in, A.V computed, written
    int smc3, wk3;                   // smc % 3, wk % 3

    // ---- the phase schedule: one K/V beat a cycle ----
    logic i_act, i_av;
    logic i_slot;
    int i_j, i_b, i_h, i_rows;
    logic want_qk, ok_qk, ok_av, i_last;
    always_comb begin
        want_qk = qn < N && qn <= an + 1;
        ok_qk = want_qk && qld > qn && wk + 2 >= qn;    // its Q rows; tile qn - 3 written (its 1/s slot)
        ok_av = !want_qk && an < N && smc > an && wk + 1 >= an;  // its statistics; its sums' slot free
        i_last = i_act && i_j == T - 1 && i_b == NB - 1;
    end
    int c0;
    always_comb begin
        c0 = (i_av ? 2 * D : D) + i_h * HD + i_b * LANES;
        fm_re = i_act;
        fm_raddr = FA'(i_j * WPR + c0 / T_IN);
    end

    // the beat in flight: its data is on fm_rdata the cycle after its address
    logic c_v, c_av, c_end, c_slot;
    int c_j, c_b, c_rows, c_lo;

    // ---- Q loader (port fm2): tile l_k's P rows into q[l_k % 2] ----
    logic l_act, l1_v, l1_last, l1_slot;
    int l_k, l_h, l_g, l_p, l_w, l_rows, l1_w, l1_h;
    /* verilator lint_off UNUSEDSIGNAL */  // a row index below P: the bits above are 0
    int l1_p;
    /* verilator lint_on UNUSEDSIGNAL */
    always_comb begin
        fm2_re = l_act;
        fm2_raddr = FA'((l_g * P + l_p) * WPR + l_w);
    end

    // ---- writer: tile wk's rows from acc[wk % 2], one O word a cycle ----
    logic w_act;
    int w_h, w_g, w_p, w_w, w_rows;

    // ---- the softmax units, one per query row ----
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
                       .RTW(SM_RTW), .RTF(SM_RTF), .RK(SM_RK), .ETABLE(SM_ETABLE), .RTABLE(SM_RTABLE)) u_sm (
            .clk, .rst, .in_valid(sm_valid), .x(sm_x[p]), .last(sm_last), .out_valid(sm_out[p]), .m(sm_m[p]),
            .s(sm_s[p]), .recip(sm_r[p]), .overflow(sm_ovf[p]));
    end

    // lane l of the beat in flight
    function automatic logic signed [W-1:0] kv(input int l);
        kv = (RW > 1) ? $signed(fm_rdata[l*W +: W]) : $signed(fm_rdata[(c_lo + l)*W +: W]);
    endfunction

    // the tile schedule, the beat in flight's MACs, the softmax results' capture
    always_ff @(posedge clk) begin
        done <= 1'b0;
        sm_valid <= 1'b0;
        sm_last <= 1'b0;
        c_v <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            i_act <= 1'b0;
        end else if (!running) begin
            if (start) begin
                running <= 1'b1;
                {qn, an, qh, qg, ah, ag} <= '0;
                {qcd, smc, smc3, avd} <= '0;
                ovf_c <= 1'b0;
            end
        end else begin
            // issue: the next beat, or the next phase whose inputs are there
            c_v <= i_act;
            c_av <= i_av;
            c_j <= i_j;
            c_b <= i_b;
            c_slot <= i_slot;
            c_rows <= i_rows;
            c_lo <= c0 % T_IN;
            c_end <= i_last;
            if (!i_act || i_last) begin
                i_act <= ok_qk || ok_av;
                i_j <= 0;
                i_b <= 0;
                if (ok_qk) begin
                    i_av <= 1'b0;
                    {i_h, i_slot, i_rows} <= {qh, qn[0], rows_of(qg)};
                    rows_s[qn % 2] <= rows_of(qg);
                    qn <= qn + 1;
                    qh <= (qg == G - 1) ? qh + 1 : qh;
                    qg <= (qg == G - 1) ? 0 : qg + 1;
                end else if (ok_av) begin
                    i_av <= 1'b1;
                    {i_h, i_slot, i_rows} <= {ah, an[0], rows_of(ag)};
                    an <= an + 1;
                    ah <= (ag == G - 1) ? ah + 1 : ah;
                    ag <= (ag == G - 1) ? 0 : ag + 1;
                end
            end else if (i_b == NB - 1) begin
                i_b <= 0;
                i_j <= i_j + 1;
            end else i_b <= i_b + 1;

            // compute: the beat whose data is on fm_rdata
            if (c_v && !c_av) begin  // K beat: the P rows' partial dots; at the key's last beat, the score
                for (int p = 0; p < P; p++) begin
                    longint d, s;
                    logic big;
                    d = (c_b == 0) ? 64'sd0 : longint'(dot[p]);
                    for (int l = 0; l < LANES; l++)
                        d = d + longint'($signed(q[c_slot][p][c_b * LANES + l])) * longint'(kv(l));
                    if (c_b == NB - 1) begin
                        s = shift_round(d, QSH, SC_ROUND);  // a finer score grid (QSH < 0): exact
                        big = s > SCMAX || s < SCMIN;
                        if (big && SC_SAT != 0) s = s > SCMAX ? SCMAX : SCMIN;
                        if (big && SC_SAT == 0 && p < c_rows) ovf_c <= 1'b1;
                        sm_x[p] <= SM_W'(s);
                        sc[c_slot][p][c_j] <= SM_W'(s);
                    end
                    dot[p] <= DOTW'(d);
                end
                if (c_b == NB - 1) begin
                    sm_valid <= 1'b1;
                    sm_last <= c_j == T - 1;
                end
                if (c_end) qcd <= qcd + 1;
            end
            if (c_v && c_av) begin  // V beat: acc += p * v, p = exp_neg(score - m)
                for (int p = 0; p < P; p++) begin
                    /* verilator lint_off UNUSEDSIGNAL */  // e fits exp's EW bits
                    logic [64:0] e;
                    /* verilator lint_on UNUSEDSIGNAL */
                    e = exp_neg_u(longint'(UW'($unsigned(SM_W'(mr[c_slot][p] - sc[c_slot][p][c_j]))) * UW'(SM_LOG2E)), UF,
                                  SM_ESTEP, SM_ETW, SM_ETF, SM_EF, SM_EW, SM_E_ROUND, SM_E_SAT);
                    if (e[64] && p < c_rows) ovf_c <= 1'b1;
                    for (int l = 0; l < LANES; l++)
                        acc[c_slot][p][c_b * LANES + l] <= ((c_j == 0) ? AVW'(0) : $signed(acc[c_slot][p][c_b * LANES + l]))
                            + AVW'($signed({1'b0, e[SM_EW-1:0]})) * AVW'(kv(l));
                end
                if (c_end) avd <= avd + 1;
            end

            // the statistics of the tiles in QK order (every row's m, 1/s: the P units run in step)
            if (sm_out[0]) begin
                for (int p = 0; p < P; p++) begin
                    mr[smc % 2][p] <= sm_m[p];
                    rr[smc3][p] <= sm_r[p];
                    if (sm_ovf[p] && p < rows_s[smc % 2]) ovf_c <= 1'b1;
                end
                smc <= smc + 1;
                smc3 <= (smc3 == 2) ? 0 : smc3 + 1;
            end

            if (wk == N && !w_act) begin
                done <= 1'b1;
                running <= 1'b0;
            end
        end
    end


    // Q loader: a tile's rows once QK of the tile two back (same slot) has finished
    always_ff @(posedge clk) begin
        l1_v <= 1'b0;
        l1_last <= 1'b0;
        if (rst || !running) begin
            l_act <= 1'b0;
            {l_k, l_h, l_g, qld} <= '0;
        end else begin
            if (!l_act && l_k < N && qcd + 1 >= l_k) begin
                for (int p = 0; p < P; p++)
                    for (int d = 0; d < HD; d++) q[l_k % 2][p][d] <= '0;  // rows past the last token: 0
                l_act <= 1'b1;
                l_p <= 0;
                l_w <= l_h * HD / T_IN;
                l_rows <= rows_of(l_g);
            end else if (l_act) begin
                l1_v <= 1'b1;
                {l1_p, l1_w, l1_h, l1_slot} <= {l_p, l_w, l_h, l_k[0]};
                if (l_w == (l_h * HD + HD - 1) / T_IN) begin
                    l_w <= l_h * HD / T_IN;
                    l_p <= l_p + 1;
                    if (l_p == l_rows - 1) begin
                        l1_last <= 1'b1;
                        l_act <= 1'b0;
                        l_k <= l_k + 1;
                        l_h <= (l_g == G - 1) ? l_h + 1 : l_h;
                        l_g <= (l_g == G - 1) ? 0 : l_g + 1;
                    end
                end else l_w <= l_w + 1;
            end
            if (l1_v)
                for (int l = 0; l < T_IN; l++) begin
                    int d;
                    d = l1_w * T_IN + l - l1_h * HD;
                    if (d >= 0 && d < HD) q[l1_slot][l1_p][d] <= fm2_rdata[l*W +: W];
                end
            if (l1_last) qld <= qld + 1;
        end
    end

    // writer: o = rq(shift_round(acc, EF, TRN) * r) to act, the head's lanes of each O word
    always_ff @(posedge clk) begin
        fm_we <= 1'b0;
        if (!running && start) ovf_w <= 1'b0;
        if (rst || !running) begin
            w_act <= 1'b0;
            {wk, wk3, w_h, w_g} <= '0;
        end else if (!w_act && wk < avd) begin
            w_act <= 1'b1;
            w_p <= 0;
            w_w <= w_h * HD / T_IN;
            w_rows <= rows_of(w_g);
        end else if (w_act) begin
            fm_we <= 1'b1;
            fm_waddr <= FA'((w_g * P + w_p) * WPO + w_w);
            for (int l = 0; l < T_IN; l++) begin
                int d;
                longint a, o;
                logic big;
                d = w_w * T_IN + l - w_h * HD;
                fm_wstrb[l] <= d >= 0 && d < HD;
                fm_wdata[l*W +: W] <= '0;
                if (d >= 0 && d < HD) begin
                    a = longint'($signed(acc[wk % 2][w_p][d])) >>> SM_EF;
                    o = shift_round(a * longint'({1'b0, rr[wk3][w_p]}), SM_RF, A_ROUND);
                    big = o > AMAX || o < AMIN;
                    if (big && A_SAT != 0) o = o > AMAX ? AMAX : AMIN;
                    if (big && A_SAT == 0) ovf_w <= 1'b1;
                    fm_wdata[l*W +: W] <= W'(o);
                end
            end
            if (w_w == (w_h * HD + HD - 1) / T_IN) begin
                w_w <= w_h * HD / T_IN;
                w_p <= w_p + 1;
                if (w_p == w_rows - 1) begin
                    w_act <= 1'b0;
                    wk <= wk + 1;
                    wk3 <= (wk3 == 2) ? 0 : wk3 + 1;
                    w_h <= (w_g == G - 1) ? w_h + 1 : w_h;
                    w_g <= (w_g == G - 1) ? 0 : w_g + 1;
                end
            end else w_w <= w_w + 1;
        end
    end
endmodule

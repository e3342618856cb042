// The accelerator's kernels for one image, parameterised by the generated config.h (namespace cfg).
//
// Every op follows mtl_moe/ARITHMETIC.md on integer codes, so C-simulation equals the golden model
// bit for bit. Edge-MoE's techniques, generalised:
//  - one shared linear unit (T_OUT x T_IN weight tiles, each tile read once per call and applied to
//    every row: weights stream from DDR once per layer, into ping-pong tile buffers so loading the
//    next tile overlaps computing with this one) serves patch embedding, QKV, projection, MLP,
//    router and experts;
//  - attention processes ATTN_P query rows together: each K/V row is read once per group and used by
//    the P rows (Edge-MoE's reordering keeps the bandwidth constant), with the single-pass softmax
//    (running max, rescaled running sum) and 1/sum applied once per row in A.V;
//  - MoE runs expert by expert over per-expert token queues built from the task's gate; an expert's
//    weights are loaded once per layer;
//  - GELU, exp, 1/x and 1/sqrt(x) are our table approximations (nonlinear.h), never hls_math.
// Feature maps live in on-chip buffers of raw codes (ap_int of the act width).
#pragma once
#include <string.h>

#include "fixed.h"
#include "nonlinear.h"

namespace mtl_moe {

using namespace cfg;

typedef ap_int<act_t::W> act_raw;

// ---- weight memory: one packed blob, tensors at byte offsets from config.h -------------------
static inline i64 rd(const unsigned char* mem, long off, long i, int bytes) {
    const unsigned char* p = mem + off + i * bytes;
    if (bytes == 1) { signed char v; memcpy(&v, p, 1); return v; }
    if (bytes == 2) { short v; memcpy(&v, p, 2); return v; }
    if (bytes == 4) { int v; memcpy(&v, p, 4); return v; }
    long long v; memcpy(&v, p, 8); return v;
}
static inline i64 rdw(const unsigned char* mem, long off, long i) { return rd(mem, off, i, WEIGHT_BYTES); }
static inline i64 rdb(const unsigned char* mem, long off, long i) { return rd(mem, off, i, BIAS_BYTES); }

// ---- the shared linear unit ------------------------------------------------------------------
// out[r][n] = requant<OUT>(sum_k in[r][k] * W[n][k] + bias[n]) for r < rows; W is (N x K) row-major
// at w_off, bias at b_off (-1: none). IN is the input type. Weight tiles (T_OUT x T_IN) are
// double-buffered: while the MAC array applies tile i to every row (weight-stationary, each tile
// read from DDR once), tile i+1 loads into the other buffer (ping-pong), so weight streaming
// overlaps compute. The partial sums of all rows are kept in acc.
typedef ap_int<weight_t::W> weight_raw;

static void load_tile(const unsigned char* mem, long w_off, int K, int n0, int k0, int nt, int kt,
                      weight_raw wt[T_OUT][T_IN]) {
    for (int t = 0; t < nt; t++)
        for (int u = 0; u < kt; u++) {
#pragma HLS PIPELINE II = 1
            wt[t][u] = rdw(mem, w_off, (long)(n0 + t) * K + k0 + u);
        }
}

// Two MACs in one DSP48E2 multiply (mtl_moe.hw.mac_pack2): x * ((w_hi << PACK_SHIFT) + w_lo) is a
// 27 x 18 product whose low PACK_SHIFT bits, read as a signed number, are x * w_lo (it is narrower
// than the field) and whose rest, once that low part is taken off, is x * w_hi.
static inline void mul_pack2(ap_int<18> x, ap_int<27> w_hi, ap_int<27> w_lo, i64& p_hi, i64& p_lo) {
    ap_int<27> wp = (w_hi << PACK_SHIFT) + w_lo;
    ap_int<45> p = wp * x;
    ap_int<PACK_SHIFT> lo = p.range(PACK_SHIFT - 1, 0);
    p_lo = lo.to_int64();
    p_hi = ((p - lo) >> PACK_SHIFT).to_int64();
}

// One tile on every row, one row per pipelined iteration. The loops have the tile's fixed bounds
// (unrolled under the row pipeline: T_OUT x T_IN multipliers, or half as many where two MACs share
// one) and skip a partial tile's missing rows/columns; the multiplies are at the operands' own
// widths, so synthesis maps them to DSP48E2s as the perf model counts them (_dsp_per_mac). The
// first pass over a group of output rows starts from the bias, the last one requantises and writes
// the outputs instead of keeping partial sums — no separate initialise / write-out loops, the
// schedule of hw_tests/rtl/linear_engine.sv.
template <class IN, class OUT>
static void mac_tile(const i64* in, int rows, int K, int k0, int nt, int kt, const weight_raw wt[T_OUT][T_IN],
                     i64 acc[MAX_ROWS][T_OUT], const i64 bias0[T_OUT], bool first, bool last, i64* out,
                     int N, int n0) {
    const bool pack = IN::W <= MAC_PACK2_MAX_IN_W;
    const int FP = IN::F + weight_t::F;
    for (int r = 0; r < rows; r++) {
#pragma HLS PIPELINE II = 1
        i64 s[T_OUT];
        for (int t = 0; t < T_OUT; t++) s[t] = first ? bias0[t] : acc[r][t];
        for (int u = 0; u < T_IN; u++) {
            if (u >= kt) continue;
            const ap_int<IN::W> x = in[(long)r * K + k0 + u];
            for (int j = 0; j < (T_OUT + 1) / 2; j++) {
                const int t0 = 2 * j, t1 = 2 * j + 1;
                if (t0 >= nt) continue;
                if (pack) {
                    i64 hi, lo;
                    mul_pack2(x, wt[t0][u], t1 < nt ? wt[t1][u] : weight_raw(0), hi, lo);
                    s[t0] += hi;
                    if (t1 < nt) s[t1] += lo;
                } else {
                    s[t0] += (x * wt[t0][u]).to_int64();
                    if (t1 < nt) s[t1] += (x * wt[t1][u]).to_int64();
                }
            }
        }
        for (int t = 0; t < T_OUT; t++) {
            if (t >= nt) continue;
            if (last) {
                fit<accum_t>(shift_round(s[t], FP - accum_t::F, TRN));  // range check only
                out[(long)r * N + n0 + t] = requant<OUT>(s[t], FP);
            } else {
                acc[r][t] = s[t];
            }
        }
    }
}

template <class IN, class OUT>
static void linear_unit(const i64* in, int rows, int K, int N, const unsigned char* mem, long w_off,
                        long b_off, i64* out) {
    const int FP = IN::F + weight_t::F;
    static i64 acc[MAX_ROWS][T_OUT];
    static weight_raw wt[2][T_OUT][T_IN];  // ping-pong weight tiles
#pragma HLS ARRAY_PARTITION variable = wt complete dim = 2
#pragma HLS ARRAY_PARTITION variable = wt complete dim = 3
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
    i64 bias0[T_OUT];
    const int n_kt = (K + T_IN - 1) / T_IN;
    int buf = 0;
    load_tile(mem, w_off, K, 0, 0, N < T_OUT ? N : T_OUT, K < T_IN ? K : T_IN, wt[0]);
    for (int n0 = 0; n0 < N; n0 += T_OUT) {
        int nt = N - n0 < T_OUT ? N - n0 : T_OUT;
        for (int t = 0; t < T_OUT; t++)
            bias0[t] = (b_off < 0 || t >= nt) ? 0 : shift_round(rdb(mem, b_off, n0 + t), bias_t::F - FP, bias_t::Q);
        for (int kb = 0; kb < n_kt; kb++) {
            int k0 = kb * T_IN, kt = K - k0 < T_IN ? K - k0 : T_IN;
            // the next tile in (n0, k0) order loads into the other buffer while this one computes
            int nk0 = k0 + T_IN, nn0 = n0;
            if (nk0 >= K) { nk0 = 0; nn0 = n0 + T_OUT; }
            if (nn0 < N)
                load_tile(mem, w_off, K, nn0, nk0, N - nn0 < T_OUT ? N - nn0 : T_OUT,
                          K - nk0 < T_IN ? K - nk0 : T_IN, wt[buf ^ 1]);
            mac_tile<IN, OUT>(in, rows, K, k0, nt, kt, wt[buf], acc, bias0, kb == 0, kb == n_kt - 1, out,
                              N, n0);
            buf ^= 1;
        }
    }
}

// ---- LayerNorm of one row of D act codes (gamma, beta of the bias type) ---------------------
static void layer_norm(const i64* x, int D, const unsigned char* mem, long g_off, long b_off, i64* y) {
    const int FA = act_t::F, FS = ln_stat_t::F, FB = bias_t::F;
    i64 sum = 0;
    for (int d = 0; d < D; d++) sum += x[d];
    i64 mean = floor_div(sum, D);
    static i64 c[N_EMBD];
    i64 sq = 0;
    for (int d = 0; d < D; d++) {
        c[d] = fit<act_t>(x[d] - mean);
        sq += shift_round(c[d] * c[d], 2 * FA - FS, TRN);
    }
    i64 var = fit<ln_stat_t>(floor_div(sq, D));
    var = fit<ln_stat_t>(var + (LN_EPS_CODE > 1 ? LN_EPS_CODE : 1));
    i64 r = rsqrt<ln_stat_t, rsqrt_t, rsqrt_entry_t, RSQRT_STEP_LOG2, RSQRT_N>(var, RSQRT_TAB);
    for (int d = 0; d < D; d++) {
        i64 n = requant<act_t>(c[d] * r, FA + rsqrt_t::F);
        i64 v = n * rdb(mem, g_off, d) + shl(rdb(mem, b_off, d), FA);
        y[d] = requant<act_t>(v, FA + FB);
    }
}

static inline i64 expn(i64 x) {
    return exp_neg<score_t, exp_t, exp_entry_t, log2e_t, EXP_STEP_LOG2, EXP_N>(x, EXP_TAB, LOG2E_CODE);
}

// ---- attention: qkv (T x 3D, Q pre-scaled) -> o (T x D) before the projection ---------------
// K and V stream one AXI beat (LANES act values of a row) per step, keys in order, each beat read
// once per group of ATTN_P query rows and used by all of them (hw_tests/rtl/attn_addr_gen.sv
// generates the same reads): phase 0 accumulates the P dot products beat by beat and updates the
// single-pass softmax once a key's last beat is in; phase 1 weights each V beat by the P rows'
// e^(score - max) (computed once per key and row) and accumulates; 1/sum is applied once per output.
static void attention_core(const i64* qkv, i64* o) {
    const int T = N_TOKENS, D = N_EMBD, HD = HEAD_DIM, FA = act_t::F;
    const int L = AXI_BITS / act_t::W > 0 ? AXI_BITS / act_t::W : 1;  // values per beat
    const int NB = (HD + L - 1) / L;                                   // beats per head row
    static i64 scores[ATTN_P][N_TOKENS];
    static i64 acc[ATTN_P][HEAD_DIM];
    for (int h = 0; h < N_HEAD; h++) {
        for (int i0 = 0; i0 < T; i0 += ATTN_P) {  // a group of P query rows shares each K/V read
            int np = T - i0 < ATTN_P ? T - i0 : ATTN_P;
            i64 m[ATTN_P], s[ATTN_P], r[ATTN_P], dot[ATTN_P], e[ATTN_P];
            for (int j = 0; j < T; j++) {  // single pass over the keys, in order
                for (int b = 0; b < NB; b++) {  // one beat of key row j
                    const i64* kj = qkv + (long)j * 3 * D + D + h * HD;
                    for (int p = 0; p < np; p++) {
                        const i64* qi = qkv + (long)(i0 + p) * 3 * D + h * HD;
                        if (b == 0) dot[p] = 0;
                        for (int l = 0; l < L; l++) {
                            const int d = b * L + l;
                            if (d < HD) dot[p] += qi[d] * kj[d];
                        }
                    }
                }
                for (int p = 0; p < np; p++) {
                    i64 sc = requant<score_t>(dot[p], 2 * FA);
                    scores[p][j] = sc;
                    if (j == 0) {
                        m[p] = sc;
                        s[p] = requant<exp_sum_t>(expn(0), exp_t::F);
                    } else {
                        i64 mn = sc > m[p] ? sc : m[p];
                        s[p] = requant<exp_sum_t>(s[p] * expn(m[p] - mn), exp_sum_t::F + exp_t::F);
                        s[p] = fit<exp_sum_t>(s[p] + shift_round(expn(sc - mn), exp_t::F - exp_sum_t::F,
                                                                 exp_sum_t::Q));
                        m[p] = mn;
                    }
                }
            }
            for (int p = 0; p < np; p++) {
                r[p] = reciprocal<exp_sum_t, recip_t, recip_entry_t, RECIP_STEP_LOG2, RECIP_N>(s[p], RECIP_TAB);
                for (int d = 0; d < HD; d++) acc[p][d] = 0;
            }
            for (int j = 0; j < T; j++) {  // each V beat read once per group
                for (int p = 0; p < np; p++) e[p] = expn(scores[p][j] - m[p]);
                for (int b = 0; b < NB; b++) {
                    const i64* vj = qkv + (long)j * 3 * D + 2 * D + h * HD;
                    for (int p = 0; p < np; p++)
                        for (int l = 0; l < L; l++) {
                            const int d = b * L + l;
                            if (d < HD) acc[p][d] += e[p] * vj[d];
                        }
                }
            }
            for (int p = 0; p < np; p++)
                for (int d = 0; d < HD; d++) {
                    i64 av = shift_round(acc[p][d], exp_t::F, TRN);  // act grid, wide integer part
                    o[(long)(i0 + p) * D + h * HD + d] = requant<act_t>(av * r[p], FA + recip_t::F);
                }
        }
    }
}

static inline i64 gelu_act(i64 x) {
    return gelu<act_t, act_t, gelu_entry_t, GELU_STEP_LOG2, GELU_N>(x, GELU_TAB);
}

// ---- router: gate of every token for the task, top-k with ties to the lower expert -------------
static void router(const i64* x, int task, const unsigned char* mem, int layer, int* idx, i64* gate) {
    const int T = N_TOKENS, D = N_EMBD, E = N_EXPERTS;
    static i64 xin[N_TOKENS * N_EMBD];
    static i64 logits[N_TOKENS * N_EXPERTS];
    const i64* src = x;
    if (ROUTER_KIND == 2) {  // task-conditioned: add the task embedding (bias type) first
        const int FA = act_t::F, FB = bias_t::F, F = FA > FB ? FA : FB;
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++)
                xin[t * D + d] = requant<act_t>(shl(x[t * D + d], F - FA) +
                                                    shl(rdb(mem, OFF_TASK_EMB[layer], (long)task * D + d), F - FB), F);
        src = xin;
    }
    long w_off = OFF_ROUTER_W[layer] + (N_ROUTERS > 1 ? (long)task * E * D * WEIGHT_BYTES : 0);
    linear_unit<act_t, router_logit_t>(src, T, D, E, mem, w_off, -1, logits);
    for (int t = 0; t < T; t++) {
        i64 mx = logits[t * E], e[N_EXPERTS], g[N_EXPERTS], sum = 0;
        for (int j = 1; j < E; j++) mx = logits[t * E + j] > mx ? logits[t * E + j] : mx;
        for (int j = 0; j < E; j++) {
            e[j] = exp_neg<router_logit_t, exp_t, exp_entry_t, log2e_t, EXP_STEP_LOG2, EXP_N>(
                logits[t * E + j] - mx, EXP_TAB, LOG2E_CODE);
            sum += e[j];
        }
        i64 s = requant<exp_sum_t>(sum, exp_t::F);
        i64 r = reciprocal<exp_sum_t, recip_t, recip_entry_t, RECIP_STEP_LOG2, RECIP_N>(s, RECIP_TAB);
        for (int j = 0; j < E; j++) g[j] = requant<gate_t>(e[j] * r, exp_t::F + recip_t::F);
        bool taken[N_EXPERTS] = {false};
        for (int k = 0; k < TOP_K; k++) {
            int best = -1;
            for (int j = 0; j < E; j++)  // strict '>' scanning upwards: ties go to the lower index
                if (!taken[j] && (best < 0 || g[j] > g[best])) best = j;
            taken[best] = true;
            idx[t * TOP_K + k] = best;
            gate[t * TOP_K + k] = g[best];
        }
    }
}

// ---- MoE: experts one after another over their token queues -----------------------------------
static void moe(const i64* x, const int* idx, const i64* gate, const unsigned char* mem, int layer, i64* out) {
    const int T = N_TOKENS, D = N_EMBD, H = EXPERT_HIDDEN, K = TOP_K;
    static i64 xs[N_TOKENS * N_EMBD], hs[N_TOKENS * EXPERT_HIDDEN], ys[N_TOKENS * N_EMBD];
    static int q_tok[N_TOKENS], q_slot[N_TOKENS];
    static i64 sum[N_TOKENS * N_EMBD];
    for (int i = 0; i < T * D; i++) sum[i] = 0;
    for (int e = 0; e < N_EXPERTS; e++) {
        int n = 0;
        for (int t = 0; t < T; t++)  // the expert's queue, in token order
            for (int k = 0; k < K; k++)
                if (idx[t * K + k] == e) { q_tok[n] = t; q_slot[n] = k; n++; }
        if (n == 0) continue;
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) xs[i * D + d] = x[q_tok[i] * D + d];
        long w1 = OFF_EXP_W1[layer] + (long)e * H * D * WEIGHT_BYTES, b1 = OFF_EXP_B1[layer] + (long)e * H * BIAS_BYTES;
        long w2 = OFF_EXP_W2[layer] + (long)e * D * H * WEIGHT_BYTES, b2 = OFF_EXP_B2[layer] + (long)e * D * BIAS_BYTES;
        linear_unit<act_t, act_t>(xs, n, D, H, mem, w1, b1, hs);
        for (int i = 0; i < n * H; i++) hs[i] = gelu_act(hs[i]);
        linear_unit<act_t, act_t>(hs, n, H, D, mem, w2, b2, ys);
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++)
                sum[q_tok[i] * D + d] += requant<act_t>(ys[i * D + d] * gate[q_tok[i] * K + q_slot[i]],
                                                        act_t::F + gate_t::F);
    }
    for (int i = 0; i < T * D; i++) out[i] = fit<act_t>(sum[i]);
}

// ---- the backbone for one image: image codes (C, H, W) -> features (D, GRID_H, GRID_W) ------------
static void backbone(const i64* image, int task, const unsigned char* mem, i64* features) {
    const int T = N_TOKENS, D = N_EMBD, P = PATCH, FA = act_t::F, FB = bias_t::F;
    static i64 cols[N_PATCHES * IN_CHANS * PATCH * PATCH];
    static i64 pe[N_PATCHES * N_EMBD];
    static i64 x[N_TOKENS * N_EMBD], h[N_TOKENS * N_EMBD], o[N_TOKENS * N_EMBD], f[N_TOKENS * N_EMBD];
    static i64 qkv[N_TOKENS * 3 * N_EMBD];
    static i64 hid[N_TOKENS * MLP_HIDDEN_MAX];  // dense MLP hidden (per layer: MLP_HIDDEN[l])
    static int idx[N_TOKENS * TOP_K];
    static i64 gate[N_TOKENS * TOP_K];
    const int KP = IN_CHANS * P * P;
    for (int gy = 0; gy < GRID_H; gy++)  // im2col in (channel, ky, kx) order
        for (int gx = 0; gx < GRID_W; gx++)
            for (int c = 0; c < IN_CHANS; c++)
                for (int ky = 0; ky < P; ky++)
                    for (int kx = 0; kx < P; kx++)
                        cols[(gy * GRID_W + gx) * KP + (c * P + ky) * P + kx] =
                            image[((long)c * IMG_H + gy * P + ky) * IMG_W + gx * P + kx];
    linear_unit<input_t, act_t>(cols, N_PATCHES, KP, D, mem, OFF_PATCH_W, OFF_PATCH_B, pe);
    const int FE = FA > FB ? FA : FB;
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) {
            i64 tok = t == 0 ? requant<act_t>(rdb(mem, OFF_CLS, d), FB) : pe[(t - 1) * D + d];
            x[t * D + d] = requant<act_t>(shl(tok, FE - FA) + shl(rdb(mem, OFF_POS, (long)t * D + d), FE - FB), FE);
        }
    for (int l = 0; l < N_LAYER; l++) {
        for (int t = 0; t < T; t++) layer_norm(x + t * D, D, mem, OFF_LN1_W[l], OFF_LN1_B[l], h + t * D);
        linear_unit<act_t, act_t>(h, T, D, 3 * D, mem, OFF_QKV_W[l], OFF_QKV_B[l], qkv);
        attention_core(qkv, o);
        linear_unit<act_t, act_t>(o, T, D, D, mem, OFF_PROJ_W[l], OFF_PROJ_B[l], f);
        for (int i = 0; i < T * D; i++) x[i] = fit<act_t>(x[i] + f[i]);
        for (int t = 0; t < T; t++) layer_norm(x + t * D, D, mem, OFF_LN2_W[l], OFF_LN2_B[l], h + t * D);
        if (IS_MOE[l]) {
            router(h, task, mem, l, idx, gate);
            moe(h, idx, gate, mem, l, f);
        } else {
            const int HID = MLP_HIDDEN[l];
            linear_unit<act_t, act_t>(h, T, D, HID, mem, OFF_FC_W[l], OFF_FC_B[l], hid);
            for (int i = 0; i < T * HID; i++) hid[i] = gelu_act(hid[i]);
            linear_unit<act_t, act_t>(hid, T, HID, D, mem, OFF_FC2_W[l], OFF_FC2_B[l], f);
        }
        for (int i = 0; i < T * D; i++) x[i] = fit<act_t>(x[i] + f[i]);
    }
    for (int t = 1; t < T; t++) {  // final LayerNorm; the class token is dropped
        layer_norm(x + t * D, D, mem, OFF_LNF_W, OFF_LNF_B, h);
        for (int d = 0; d < D; d++) features[(long)d * N_PATCHES + (t - 1)] = h[d];
    }
}

}  // namespace mtl_moe

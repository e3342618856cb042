// The accelerator's kernels for one image, parameterised by the generated config.h (namespace cfg).
//
// Every op follows mtl_moe/ARITHMETIC.md on integer codes, so C-simulation equals the golden model
// bit for bit. Vitis HLS idiom throughout (STYLE.md 2b): codes at their types' widths (fixed.h),
// feature maps as on-chip memories of words (vec.h: T_IN codes a word, so a pipelined iteration
// reads one word), one shared linear unit (ALLOCATION limit 1) whose load -> MAC -> store stages
// form a DATAFLOW region joined by hls::streams, attention as a dataflow of K/V read -> Q.K^T ->
// single-pass softmax -> A.V with ATTN_P query rows interleaved, weights in DDR tile-major
// (mtl_moe/layout.py: a T_OUT x T_IN tile is TILE_BEATS AXI words, the tiles of a matrix in the
// order the MAC array consumes them, each of the WEIGHT_PORTS planes of a matrix one burst). Edge-MoE's techniques, generalised:
//  - the shared linear unit serves patch embedding, QKV, projection, MLP, router and experts; each
//    weight tile is read from DDR once per call and applied to every row (weight-stationary);
//  - attention: each K/V beat is read once per group of ATTN_P query rows and used by all of them;
//  - MoE runs expert by expert over per-expert token queues; an expert's weights stream once;
//  - GELU, exp, 1/x and 1/sqrt(x) are our table approximations (nonlinear.h), never hls_math.
// Every pipelined loop states the II it is written for; every variable-bound loop has a
// LOOP_TRIPCOUNT from the config. On-chip buffers and their BRAM/URAM cost: mtl_moe/onchip.py.
#pragma once
#include <hls_stream.h>

#include "fixed.h"
#include "nonlinear.h"
#include "vec.h"

namespace mtl_moe {

using namespace cfg;

// ---- codes, words and buffer shapes ----------------------------------------------------------
typedef ap_uint<AXI_BITS> axi_word;  // one beat of an m_axi port
typedef ap_int<FM_W> fm_raw;          // a feature-map code (input or act)
typedef act_t::raw act_raw;
typedef weight_t::raw weight_raw;
typedef bias_t::raw bias_raw;
typedef score_t::raw score_raw;
typedef gate_t::raw gate_raw;
typedef ap_int<ACC_W> acc_raw;  // the linear unit's exact sums (config.h: ACC_W)
const int LU_OUT_W = cmax<act_t::W, router_logit_t::W>::v;
typedef ap_int<LU_OUT_W> lu_out_raw;

typedef vec<fm_raw, T_IN> fm_word;                 // T_IN consecutive codes of a feature row
typedef vec<weight_raw, T_OUT * T_IN> w_tile;      // one weight tile, row-major (t * T_IN + u)
typedef vec<acc_raw, T_OUT> acc_vec;               // the T_OUT partial sums of one row
typedef vec<lu_out_raw, T_OUT> out_vec;            // the T_OUT outputs of one row

const int WORD_BYTES = AXI_BITS / 8;
template <int N>
struct words_of { static const int v = (N + T_IN - 1) / T_IN; };
const int D_WORDS = words_of<N_EMBD>::v, QKV_WORDS = words_of<3 * N_EMBD>::v;
const int KP = IN_CHANS * PATCH * PATCH, KP_WORDS = words_of<KP>::v;  // patch embedding K
const int IMG_ELEMS = IN_CHANS * IMG_H * IMG_W, N_OUT = N_EMBD * N_PATCHES;
const int HID_WORDS = cmax<cmax<N_PATCHES * KP_WORDS, N_TOKENS * words_of<MLP_HIDDEN_MAX>::v>::v,
                           N_TOKENS * words_of<EXPERT_HIDDEN>::v>::v;  // im2col rows, MLP/expert hidden
const int K_TILES_MAX = (K_MAX + T_IN - 1) / T_IN, N_TILES_MAX = (N_MAX + T_OUT - 1) / T_OUT;
const int LU_BEATS_MAX = K_TILES_MAX * N_TILES_MAX * TILE_BEATS;
const int E_TILES = (N_EXPERTS + T_OUT - 1) / T_OUT;
// output words one T_OUT-wide tile of a row touches (it starts at a multiple of T_OUT)
const int STORE_WORDS = T_OUT % T_IN == 0 ? T_OUT / T_IN : (T_OUT + T_IN - 2) / T_IN + 1;
const int FP_ACT = act_t::F + weight_t::F, FP_INPUT = input_t::F + weight_t::F;  // product grids
const int WSB = 8 * WEIGHT_BYTES, W_PER_BEAT = AXI_BITS / WSB;  // weight codes in one beat
const int BSB = 8 * BIAS_BYTES, B_PER_BEAT = AXI_BITS / BSB;
// banks of an on-chip parameter row (load_row): T_IN codes read a cycle, a beat's B_PER_BEAT written
const int ROW_BANKS = T_IN > B_PER_BEAT ? T_IN : B_PER_BEAT;
const bool LU_PACK2 = FM_W <= MAC_PACK2_MAX_IN_W;  // two MACs per DSP48E2 (mtl_moe.hw.mac_pack2)
// router / MoE indices at their exact widths: an expert id, a token index, a top-k slot (at least 1 bit)
const int EXPERT_ID_W = cmax<clog2<N_EXPERTS>::v, 1>::v, TOKEN_ID_W = cmax<clog2<N_TOKENS>::v, 1>::v;
const int SLOT_W = cmax<clog2<TOP_K>::v, 1>::v;
typedef ap_uint<EXPERT_ID_W> expert_id;
typedef ap_uint<TOKEN_ID_W> token_id;
typedef ap_uint<SLOT_W> slot_id;
typedef vec<ap_int<MOE_SUM_W>, T_IN> sum_word;  // T_IN exact gated sums of a token (moe, residual_sum)
// The experts' token queues, built by the router: expert e's entries at e * N_TOKENS .. + q_len[e] - 1
const int Q_ENTRIES = N_EXPERTS * N_TOKENS;
typedef ap_uint<TOKEN_ID_W + 1> queue_len;  // 0 .. N_TOKENS entries
const token_id NO_QUEUE[1] = {0};  // the linear unit's queue argument when its rows are the input's own
enum LuIn { LU_IN_ACT = 0, LU_IN_INPUT = 1 };     // the linear unit's runtime input format
enum LuOut { LU_OUT_ACT = 0, LU_OUT_LOGIT = 1 };  // ... and output format

// Code `lane` of an AXI word whose codes are SB bits apart (the low W bits of its storage field).
template <int W, int SB>
static inline ap_uint<W> beat_field(const axi_word& w, int lane) {
#ifdef MTL_MOE_FAST_CSIM
    const int bit = lane * SB;  // SB is 8, 16, 32 or 64: a field lies within one 64-bit limb
    return ap_uint<W>(w.V.get_pVal()[bit / 64] >> (bit % 64));
#else
    return w.range(lane * SB + W - 1, lane * SB);
#endif
}

// ---- the shared linear unit --------------------------------------------------------------------
// out[r][n] = requant(sum_k in[r][k] * W[n][k] + bias[n]) for r < rows; W (N x K) tile-major at byte
// offset w_off, bias at b_off (-1: none). Four dataflow stages joined by streams: weight tiles (one
// burst), bias (one burst), the MAC array, the store; the tile stream (LU_TILE_DEPTH = 2) is the
// ping-pong buffer that lets the next tile load while the MAC array applies this one to every row.

// Weights: all n_tiles x k_tiles tiles of the matrix, one flat loop over contiguous AXI words per
// weight bundle, so each bundle's reads are one burst request (UG1399: consecutive addresses in a
// pipelined loop), which the m_axi adapter issues as AXI bursts of RD_BURST beats (one tile per
// port), up to RD_OUTSTANDING of them ahead, AXI_LATENCY cycles early (top.cpp's pragmas, config.h):
// the adapter's read buffer holds the RD_AHEAD_BEATS the board's first-beat latency needs, so the
// load runs ahead of the MAC array by that much and the latency is paid once per call (the perf
// model's schedule); a tile is complete after TILE_BEATS beats and goes to the MAC stage.
// With WEIGHT_PORTS == 1 the matrix is one plane (mtl_moe/layout.py): tile after tile, each its
// TILE_BEATS words, all read through mem (gmem_w); mem1 is not read (it shares gmem_w's adapter).
// With WEIGHT_PORTS == 2 it is two planes of n_tiles * PLANE_BEATS words each (TileLayout.ports):
// plane 0 the first PLANE_BEATS beats of every tile, tile after tile, then plane 1 the second
// halves. mem (gmem_w) reads plane 0 and mem1 (gmem_w1, the same weights.bin) plane 1, each from its
// first word to its last, two beats a cycle: a tile in PLANE_BEATS = TILE_BEATS / 2 cycles.
static void lu_load_weights(const axi_word* mem, const axi_word* mem1, int w_off, int K, int N,
                            hls::stream<w_tile>& tiles) {
    const int n_tiles = ((K + T_IN - 1) / T_IN) * ((N + T_OUT - 1) / T_OUT);
    const int base = w_off / WORD_BYTES;
    w_tile t;
#pragma HLS ARRAY_PARTITION variable = t.v complete
    int b = 0;
    if (WEIGHT_PORTS == 2) {
        const int n_plane = n_tiles * PLANE_BEATS;  // words of one plane
        const int base1 = base + n_plane;          // plane 1 follows plane 0 (TileLayout.plane_offset)
        // II=1: one beat from each bundle a cycle (2 x W_PER_BEAT codes into the partitioned tile).
        // Contiguous: iteration i reads word base + i of plane 0 through gmem_w and word base1 + i
        // of plane 1 through gmem_w1, both incrementing by one word, so each bundle is one burst
        // of n_plane beats. Both belong to tile i / PLANE_BEATS: they are its beats b and
        // PLANE_BEATS + b (b = i % PLANE_BEATS), so a tile is complete every PLANE_BEATS cycles.
        for (int i = 0; i < n_plane; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = PLANE_BEATS max = LU_BEATS_MAX / 2
            const axi_word beat0 = mem[base + i];
            const axi_word beat1 = mem1[base1 + i];
            for (int l = 0; l < W_PER_BEAT; l++) {
                const int e0 = b * W_PER_BEAT + l, e1 = (PLANE_BEATS + b) * W_PER_BEAT + l;
                if (e0 < T_OUT * T_IN) t[e0] = weight_raw(beat_field<weight_t::W, WSB>(beat0, l));
                if (e1 < T_OUT * T_IN) t[e1] = weight_raw(beat_field<weight_t::W, WSB>(beat1, l));
            }
            if (++b == PLANE_BEATS) {
                tiles.write(t);
                b = 0;
            }
        }
    } else {
        const int n_beats = n_tiles * TILE_BEATS;
        // II=1: one AXI beat a cycle (W_PER_BEAT codes into the partitioned tile). Contiguous:
        // iteration i reads word base + i, the tiles being stored back to back, so the matrix is
        // one burst of n_beats beats through gmem_w.
        for (int i = 0; i < n_beats; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = TILE_BEATS max = LU_BEATS_MAX
            const axi_word beat = mem[base + i];
            for (int l = 0; l < W_PER_BEAT; l++) {
                const int e = b * W_PER_BEAT + l;
                if (e < T_OUT * T_IN) t[e] = weight_raw(beat_field<weight_t::W, WSB>(beat, l));
            }
            if (++b == TILE_BEATS) {
                tiles.write(t);
                b = 0;
            }
        }
    }
}

// Bias: the N codes rounded onto the product grid of the input format (bias type's own rounding),
// T_OUT per output tile (zero beyond N and without a bias).
static void lu_load_bias(const axi_word* mem, int b_off, int N, int in_fmt, hls::stream<acc_vec>& biases) {
    const int n_all = ((N + T_OUT - 1) / T_OUT) * T_OUT;
    const int base = b_off / WORD_BYTES;
    axi_word beat = 0;
    acc_vec v;
#pragma HLS ARRAY_PARTITION variable = v.v complete
    int t = 0;
    // II=1: one bias code a cycle, one AXI beat every B_PER_BEAT codes (one burst over the row)
    for (int n = 0; n < n_all; n++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = T_OUT max = N_TILES_MAX * T_OUT
        acc_raw g = 0;
        if (b_off >= 0 && n < N) {
            const int l = n % B_PER_BEAT;
            if (l == 0) beat = mem[base + n / B_PER_BEAT];
            const bias_raw b = beat_field<bias_t::W, BSB>(beat, l);
            g = in_fmt == LU_IN_INPUT ? acc_raw(shift_round<bias_t::F - FP_INPUT, bias_t::Q>(b))
                                      : acc_raw(shift_round<bias_t::F - FP_ACT, bias_t::Q>(b));
        }
        v[t] = g;
        if (++t == T_OUT) {
            biases.write(v);
            t = 0;
        }
    }
}

// Two MACs in one DSP48E2 multiply (mtl_moe.hw.mac_pack2): x * ((w_hi << PACK_SHIFT) + w_lo) is a
// 27 x 18 product whose low PACK_SHIFT bits, read as a signed number, are x * w_lo (it is narrower
// than the field) and whose rest, once that low part is taken off, is x * w_hi.
static inline void mul_pack2(const ap_int<18>& x, const ap_int<27>& w_hi, const ap_int<27>& w_lo,
                             ap_int<45>& p_hi, ap_int<PACK_SHIFT>& p_lo) {
    const ap_int<27> wp = (w_hi << PACK_SHIFT) + w_lo;
    const ap_int<45> p = mul(wp, x);
    p_lo = p.range(PACK_SHIFT - 1, 0);
    p_hi = (p - p_lo) >> PACK_SHIFT;
}

// The T_OUT x T_IN MACs of one input word against one tile (unrolled: the MAC array). Padded tile
// entries are zero, so input lanes beyond K and outputs beyond N contribute nothing.
static inline void mac_tile(const fm_word& x, const w_tile& wt, acc_vec& s) {
    for (int u = 0; u < T_IN; u++) {
#pragma HLS UNROLL
        for (int j = 0; j < (T_OUT + 1) / 2; j++) {
#pragma HLS UNROLL
            const int t0 = 2 * j, t1 = 2 * j + 1;
            if (LU_PACK2) {
                ap_int<45> hi;
                ap_int<PACK_SHIFT> lo;
                mul_pack2(x[u], wt[t0 * T_IN + u], t1 < T_OUT ? wt[t1 * T_IN + u] : weight_raw(0), hi, lo);
                s[t0] += hi;
                if (t1 < T_OUT) s[t1] += lo;
            } else {
                s[t0] += mul(x[u], wt[t0 * T_IN + u]);
                if (t1 < T_OUT) s[t1] += mul(x[u], wt[t1 * T_IN + u]);
            }
        }
    }
}

#ifndef __SYNTHESIS__
// C-simulation only: golden's range check of the exact sum against the accumulator type.
static inline void check_accum(const acc_raw& s, int in_fmt) {
    if (accum_t::O != WRAP) return;
    const long long v = s.to_int64();  // ACC_W <= 64
    const bool bad = in_fmt == LU_IN_INPUT ? (v < ACC_LO_INPUT || v > ACC_HI_INPUT)
                                           : (v < ACC_LO_ACT || v > ACC_HI_ACT);
    if (bad) g_wrap_overflows++;
}
#endif

// One rounding of the T_OUT sums to the output format (a mux of the three constant requantisers).
static inline out_vec lu_requant(const acc_vec& s, int in_fmt, int out_fmt) {
    out_vec y;
    for (int t = 0; t < T_OUT; t++) {
#pragma HLS UNROLL
#ifndef __SYNTHESIS__
        check_accum(s[t], in_fmt);
#endif
        if (out_fmt == LU_OUT_LOGIT) y[t] = requant<router_logit_t, FP_ACT>(s[t]);
        else if (in_fmt == LU_IN_INPUT) y[t] = requant<act_t, FP_INPUT>(s[t]);
        else y[t] = requant<act_t, FP_ACT>(s[t]);
    }
    return y;
}

// The MAC array: for each output tile, each input tile is applied to every row; the first pass
// starts from the bias, the last one requantises and streams the row out instead of keeping its
// partial sums (the schedule of hw_tests/rtl/linear_engine.sv).
// q_base >= 0 (an expert's first linear): row r is input row q[q_base + r] (the token of the queue's
// entry r, as linear_engine.sv reads its rows through accel_router's queue), not a gathered copy.
static void lu_compute(const fm_word* in, int rows, int K, int N, int in_fmt, int out_fmt, const token_id* q,
                       int q_base, hls::stream<w_tile>& tiles, hls::stream<acc_vec>& biases,
                       hls::stream<out_vec>& outs) {
    const int k_tiles = (K + T_IN - 1) / T_IN, n_tiles = (N + T_OUT - 1) / T_OUT;
    static acc_vec acc[MAX_ROWS];  // partial sums of every row: one T_OUT-wide word a row
    for (int nb = 0; nb < n_tiles; nb++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_TILES_MAX
        const acc_vec b = biases.read();
        for (int kb = 0; kb < k_tiles; kb++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = K_TILES_MAX
#pragma HLS LOOP_FLATTEN off
            const w_tile wt = tiles.read();
#pragma HLS ARRAY_PARTITION variable = wt.v complete
            const bool first = kb == 0, last = kb == k_tiles - 1;
#ifdef MTL_MOE_FAST_CSIM
            long long wl[T_OUT * T_IN];  // C-sim: the same MACs in host integers (sums fit ACC_W <= 64)
            for (int e = 0; e < T_OUT * T_IN; e++) wl[e] = wt[e].to_int64();
            for (int r = 0; r < rows; r++) {
                const fm_word x = in[(q_base >= 0 ? int(q[q_base + r]) : r) * k_tiles + kb];
                long long xl[T_IN], sl[T_OUT];
                for (int u = 0; u < T_IN; u++) xl[u] = x[u].to_int64();
                for (int t = 0; t < T_OUT; t++) {
                    long long v = first ? b[t].to_int64() : acc[r][t].to_int64();
                    for (int u = 0; u < T_IN; u++) v += xl[u] * wl[t * T_IN + u];
                    sl[t] = v;
                }
                acc_vec s;
                for (int t = 0; t < T_OUT; t++) s[t] = sl[t];
                if (last) outs.write(lu_requant(s, in_fmt, out_fmt));
                else acc[r] = s;
            }
            continue;
#endif
            // II=1: one input word and one row of partial sums a cycle, T_OUT x T_IN MACs (half as
            // many DSPs where two share one). acc[r] is read and written once per pass; passes do
            // not overlap (LOOP_FLATTEN off), hence no inter-iteration dependence.
            for (int r = 0; r < rows; r++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_ROWS
#pragma HLS DEPENDENCE variable = acc inter false
                const fm_word x = in[(q_base >= 0 ? int(q[q_base + r]) : r) * k_tiles + kb];  // word kb of the row
                acc_vec s = first ? b : acc[r];
                mac_tile(x, wt, s);
                if (last) outs.write(lu_requant(s, in_fmt, out_fmt));
                else acc[r] = s;
            }
        }
    }
}

// The store: each row's T_OUT outputs into the output feature map (read-modify-write of the
// STORE_WORDS words the tile touches; other lanes keep their codes), or into the logit buffer.
static void lu_store(hls::stream<out_vec>& outs, int rows, int N, int out_fmt, fm_word* out, out_vec* logits) {
    const int n_tiles = (N + T_OUT - 1) / T_OUT, n_words = (N + T_IN - 1) / T_IN;
    for (int nb = 0; nb < n_tiles; nb++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_TILES_MAX
        const int n0 = nb * T_OUT;
        out_vec y;
        int r = 0, j = 0;
        // II=1: one output word a cycle (consecutive iterations touch different words)
        for (int i = 0; i < rows * STORE_WORDS; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = STORE_WORDS max = MAX_ROWS * STORE_WORDS
#pragma HLS DEPENDENCE variable = out inter false
            if (j == 0) y = outs.read();
            const int w = n0 / T_IN + j;
            if (out_fmt == LU_OUT_LOGIT) {
                if (j == 0) logits[r * E_TILES + nb] = y;
            } else if (w < n_words) {
                fm_word v = out[r * n_words + w];
                for (int l = 0; l < T_IN; l++) {
                    const int n = w * T_IN + l - n0;
                    if (n >= 0 && n < T_OUT && n0 + n < N) v[l] = y[n];
                }
                out[r * n_words + w] = v;
            }
            if (++j == STORE_WORDS) {
                j = 0;
                r++;
            }
        }
    }
}

// in: rows x ceil(K / T_IN) words; out: rows x ceil(N / T_IN) words (or logits for LU_OUT_LOGIT).
// mem: the weight blob through gmem_w (bias, and the weight tiles' plane 0); mem1: the same blob
// through gmem_w1 (plane 1 of the tiles, the second half of each, when WEIGHT_PORTS == 2).
// q, q_base: an expert's rows through its token queue (lu_compute); q_base < 0: the input's own rows.
static void linear_unit(const fm_word* in, int rows, int K, int N, const axi_word* mem, const axi_word* mem1,
                        int w_off, int b_off, int in_fmt, int out_fmt, fm_word* out, out_vec* logits,
                        const token_id* q = NO_QUEUE, int q_base = -1) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    hls::stream<w_tile> tiles("lu_tiles");
    hls::stream<acc_vec> biases("lu_bias");
    hls::stream<out_vec> outs("lu_out");
#pragma HLS STREAM variable = tiles depth = LU_TILE_DEPTH
#pragma HLS STREAM variable = biases depth = 2
#pragma HLS STREAM variable = outs depth = MAX_ROWS
    lu_load_weights(mem, mem1, w_off, K, N, tiles);
    lu_load_bias(mem, b_off, N, in_fmt, biases);
    lu_compute(in, rows, K, N, in_fmt, out_fmt, q, q_base, tiles, biases, outs);
    lu_store(outs, rows, N, out_fmt, out, logits);
}

// ---- per-layer parameters: row vectors of the bias type, loaded once into on-chip arrays --------
// Beat b of a row of N bias codes: its B_PER_BEAT codes into dst (ROW_BANKS cyclic banks take them
// in one cycle); codes past N are the row's padding.
template <int N>
static void row_beat(const axi_word& beat, int b, bias_raw dst[N]) {
#pragma HLS INLINE
    for (int l = 0; l < B_PER_BEAT; l++) {
        const int i = b * B_PER_BEAT + l;
        if (i < N) dst[i] = bias_raw(beat_field<bias_t::W, BSB>(beat, l));
    }
}

template <int N>
static void load_row(const axi_word* mem, int off, bias_raw dst[N]) {
    const int base = off / WORD_BYTES;
    // II=1: one AXI beat a cycle (one burst)
    for (int b = 0; b < (N + B_PER_BEAT - 1) / B_PER_BEAT; b++) {
#pragma HLS PIPELINE II = 1
        row_beat<N>(mem[base + b], b, dst);
    }
}

// ---- LayerNorm of every token row (N_EMBD act codes; gamma, beta of the bias type) ---------------
static void layer_norm_row(const fm_word* x, const bias_raw gamma[N_EMBD], const bias_raw beta[N_EMBD],
                           fm_word* y) {
#pragma HLS INLINE off
    const int FA = act_t::F, FS = ln_stat_t::F, FB = bias_t::F, LD = clog2<N_EMBD + 1>::v;
    const int SQ_S = 2 * FA - FS;  // squares truncated to the ln_stat grid
    const int SQW = shift_round_w<2 * act_t::W, SQ_S>::v + LD;
    ap_int<act_t::W + LD + 1> sum = 0;
    // II=1: one word (T_IN codes) a cycle
    for (int w = 0; w < D_WORDS; w++) {
#pragma HLS PIPELINE II = 1
        const fm_word v = x[w];
        for (int l = 0; l < T_IN; l++)
            if (w * T_IN + l < N_EMBD) sum += act_raw(v[l]);
    }
    const ap_int<act_t::W + LD + 1> mean = floor_div<N_EMBD>(sum);  // D a constant: no runtime divide
    act_raw c[D_WORDS][T_IN];  // centred codes of the row
#pragma HLS ARRAY_PARTITION variable = c complete dim = 2
    ap_int<SQW> sq = 0;
    // II=1: one word a cycle
    for (int w = 0; w < D_WORDS; w++) {
#pragma HLS PIPELINE II = 1
        const fm_word v = x[w];
        for (int l = 0; l < T_IN; l++) {
            const act_raw cc = w * T_IN + l < N_EMBD ? fit<act_t>(act_raw(v[l]) - mean) : act_raw(0);
            c[w][l] = cc;
            sq += shift_round<SQ_S, TRN>(mul(cc, cc));
        }
    }
    typename ln_stat_t::raw var = fit<ln_stat_t>(floor_div<N_EMBD>(sq));
    var = fit<ln_stat_t>(ap_int<ln_stat_t::W + 1>(var) + (LN_EPS_CODE > 1 ? LN_EPS_CODE : 1));
    const rsqrt_t::raw r = rsqrt<ln_stat_t, rsqrt_t, rsqrt_entry_t, RSQRT_STEP_LOG2, RSQRT_N>(var, RSQRT_TAB);
    // II=1: one output word a cycle (T_IN multiplies by r, by gamma)
    for (int w = 0; w < D_WORDS; w++) {
#pragma HLS PIPELINE II = 1
        fm_word o;
        for (int l = 0; l < T_IN; l++) {
            const int d = w * T_IN + l;
            if (d < N_EMBD) {
                const act_raw n = requant<act_t, FA + rsqrt_t::F>(c[w][l] * r);
                const ap_int<bias_t::W + FA + 1> bs = ap_int<bias_t::W + FA + 1>(beta[d]) << FA;
                o[l] = requant<act_t, FA + FB>(n * gamma[d] + bs);
            } else {
                o[l] = 0;
            }
        }
        y[w] = o;
    }
}

static void layer_norm(const fm_word* x, const axi_word* mem, int g_off, int b_off, fm_word* y) {
    static bias_raw gamma[N_EMBD], beta[N_EMBD];  // this layer's parameters, loaded once
#pragma HLS ARRAY_PARTITION variable = gamma cyclic factor = ROW_BANKS
#pragma HLS ARRAY_PARTITION variable = beta cyclic factor = ROW_BANKS
    load_row<N_EMBD>(mem, g_off, gamma);
    load_row<N_EMBD>(mem, b_off, beta);
    for (int t = 0; t < N_TOKENS; t++) layer_norm_row(x + t * D_WORDS, gamma, beta, y + t * D_WORDS);
}

// ---- elementwise kernels over feature-map words ---------------------------------------------------
// x = fit(x + f) over rows x D codes (the residual add).
static void residual(fm_word* x, const fm_word* f) {
    // II=1: one word of each a cycle
    for (int i = 0; i < N_TOKENS * D_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        fm_word v = x[i];
        const fm_word g = f[i];
        for (int l = 0; l < T_IN; l++)
            if ((i % D_WORDS) * T_IN + l < N_EMBD) v[l] = fit<act_t>(act_raw(v[l]) + act_raw(g[l]));
        x[i] = v;
    }
}

// x = fit(x + fit(sum)) over rows x D codes: a MoE block's residual reads its exact gated sums where
// moe accumulated them (the block's output is their fit, golden moe) and clears each word it reads for
// the next block (accel_combine.sv's clear), one word of each a cycle.
static void residual_sum(fm_word* x, sum_word* sum) {
    // II=1: one word of each a cycle
    for (int i = 0; i < N_TOKENS * D_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        fm_word v = x[i];
        const sum_word g = sum[i];
        for (int l = 0; l < T_IN; l++)
            if ((i % D_WORDS) * T_IN + l < N_EMBD) v[l] = fit<act_t>(act_raw(v[l]) + fit<act_t>(g[l]));
        x[i] = v;
        sum[i] = sum_word::zero();
    }
}

static inline act_raw gelu_act(const act_raw& x) {
    return gelu<act_t, act_t, gelu_entry_t, GELU_STEP_LOG2, GELU_N>(x, GELU_TAB);
}

// GELU in place on rows x cols codes (T_IN table units, one word a cycle).
static void gelu_rows(fm_word* h, int rows, int cols) {
    const int n_words = (cols + T_IN - 1) / T_IN;
    int w = 0;
    // II=1: one word a cycle
    for (int i = 0; i < rows * n_words; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HID_WORDS
        fm_word v = h[i];
        for (int l = 0; l < T_IN; l++)
            if (w * T_IN + l < cols) v[l] = gelu_act(act_raw(v[l]));
        h[i] = v;
        if (++w == n_words) w = 0;
    }
}

// ---- patch embedding input and the class/position embedding --------------------------------------
// The image of batch entry b (C, H, W) from DDR, one burst: a beat's IMG_PER codes in IMG_CHUNKS
// cycles, IMG_CH a cycle (img's T_IN cyclic banks take 2 T_IN writes a cycle), so the AXI beat
// rate sets the pace as in accel_image.sv (which also does im2col while writing; here im2col is
// the loop after this one).
const int IMG_PER = AXI_BITS / (8 * IN_BYTES), IMG_CH = IMG_PER < 2 * T_IN ? IMG_PER : 2 * T_IN;
const int IMG_CHUNKS = (IMG_PER + IMG_CH - 1) / IMG_CH;
const int IMG_STEPS = (IMG_ELEMS + IMG_PER - 1) / IMG_PER * IMG_CHUNKS, IMG_STEPS_MAX = IMG_STEPS + IMG_CHUNKS;
static void read_image(const axi_word* images, int b, fm_raw img[IMG_ELEMS]) {
    const int g0 = b * IMG_ELEMS, b0 = g0 / IMG_PER, b1 = (g0 + IMG_ELEMS - 1) / IMG_PER;
    axi_word beat = 0;
    // II=1: IMG_CH codes a cycle, a new AXI beat every IMG_CHUNKS cycles (b0 .. b1: the beats the
    // image touches; its first and last beat may hold codes of the images beside it)
    for (int i = 0; i < (b1 - b0 + 1) * IMG_CHUNKS; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = IMG_STEPS max = IMG_STEPS_MAX
        const int j = i % IMG_CHUNKS, k = i / IMG_CHUNKS;
        if (j == 0) beat = images[b0 + k];
        for (int l = 0; l < IMG_CH; l++) {
            const int lane = j * IMG_CH + l, g = (b0 + k) * IMG_PER + lane;
            if (lane < IMG_PER && g >= g0 && g < g0 + IMG_ELEMS)
                img[g - g0] = input_t::raw(beat_field<input_t::W, 8 * IN_BYTES>(beat, lane));
        }
    }
}

// im2col rows in (channel, ky, kx) order: word w of patch p holds its codes k = w*T_IN .. + T_IN-1.
static void im2col(const fm_raw img[IMG_ELEMS], fm_word* cols) {
    // II=IM2COL_II (config.h, hls_export.im2col_ii): 1 when PATCH is a multiple of T_IN (a word is T_IN
    // pixels of one patch row: one per bank of img's cyclic partition); a smaller patch gathers a word
    // from T_IN / PATCH pixel rows, whose bank conflicts over the 2 ports of each bank set the II of
    // this once-per-image loop (the demo: 2)
    for (int p = 0; p < N_PATCHES; p++)
        for (int w = 0; w < KP_WORDS; w++) {
#pragma HLS PIPELINE II = IM2COL_II
            const int gy = p / GRID_W, gx = p % GRID_W;
            fm_word v;
            for (int l = 0; l < T_IN; l++) {
                const int k = w * T_IN + l;
                const int c = k / (PATCH * PATCH), ky = (k / PATCH) % PATCH, kx = k % PATCH;
                v[l] = k < KP ? img[(c * IMG_H + gy * PATCH + ky) * IMG_W + gx * PATCH + kx] : fm_raw(0);
            }
            cols[p * KP_WORDS + w] = v;
        }
}

// x = rq([cls; patch embeddings] + pos) on the finer grid, as accel_embed.sv schedules it: the cls
// row and pos row 0 first, then per token t one loop that emits token t's words from one pos slot
// while the next pos row's beats fill the other (ping-pong), so the T pos rows stream in once,
// back to back, and a token costs max(POS_BEATS, D_WORDS) cycles (mtl_moe.perf's "embed").
static void embed_row(const fm_word* pe, int t, const bias_raw cls[N_EMBD], const bias_raw cur[N_EMBD],
                      const axi_word* mem, int next, bias_raw nxt[N_EMBD], fm_word* x) {
#pragma HLS INLINE
    const int FA = act_t::F, FB = bias_t::F, FE = FA > FB ? FA : FB;
    const int EW = cmax<act_t::W + FE - FA, bias_t::W + FE - FB>::v + 1;
    const int POS_BEATS = (N_EMBD + B_PER_BEAT - 1) / B_PER_BEAT;
    const int STEPS = POS_BEATS > D_WORDS ? POS_BEATS : D_WORDS;
    // II=1: a beat of the next row in (if any), a word of this row out (if any)
    for (int i = 0; i < STEPS; i++) {
#pragma HLS PIPELINE II = 1
        // next: the next pos row's first word (-1: none)
        if (next >= 0 && i < POS_BEATS) row_beat<N_EMBD>(mem[next + i], i, nxt);
        if (i < D_WORDS) {
            const fm_word p = t > 0 ? pe[(t - 1) * D_WORDS + i] : fm_word::zero();
            fm_word o;
            for (int l = 0; l < T_IN; l++) {
                const int d = i * T_IN + l;
                if (d < N_EMBD) {
                    const act_raw tok = t == 0 ? requant<act_t, FB>(cls[d]) : act_raw(p[l]);
                    const ap_int<EW> s = (ap_int<EW>(tok) << (FE - FA)) + (ap_int<EW>(cur[d]) << (FE - FB));
                    o[l] = requant<act_t, FE>(s);
                } else {
                    o[l] = 0;
                }
            }
            x[t * D_WORDS + i] = o;
        }
    }
}

static void embed(const fm_word* pe, const axi_word* mem, fm_word* x) {
    static_assert(POS_ROW_BYTES % WORD_BYTES == 0, "pos rows start on AXI words (hls_export's layout)");
    static bias_raw cls[N_EMBD], pos0[N_EMBD], pos1[N_EMBD];  // pos rows ping-pong: t even in pos0
#pragma HLS ARRAY_PARTITION variable = cls cyclic factor = ROW_BANKS
#pragma HLS ARRAY_PARTITION variable = pos0 cyclic factor = ROW_BANKS
#pragma HLS ARRAY_PARTITION variable = pos1 cyclic factor = ROW_BANKS
    const int ROW = POS_ROW_BYTES / WORD_BYTES;
    load_row<N_EMBD>(mem, OFF_CLS, cls);
    load_row<N_EMBD>(mem, OFF_POS, pos0);
    for (int t = 0; t < N_TOKENS; t++) {
        const int next = t + 1 < N_TOKENS ? OFF_POS / WORD_BYTES + (t + 1) * ROW : -1;
        if (t % 2 == 0) embed_row(pe, t, cls, pos0, mem, next, pos1, x);  // one slot read, the other written
        else embed_row(pe, t, cls, pos1, mem, next, pos0, x);
    }
}

// ---- attention: qkv (T x 3D, Q pre-scaled) -> o (T x D) before the projection --------------------
// A dataflow of four processes: K/V of all heads into on-chip buffers (one beat of ATTN_LANES
// values a cycle) and Q in consumption order; Q.K^T with the ATTN_P rows of a group sharing each K
// beat; the single-pass softmax statistics (running max, rescaled running sum) with the rows
// interleaved; A.V with each V beat shared by the P rows and 1/sum applied once per output.
typedef vec<act_raw, ATTN_LANES> kv_word;
typedef vec<score_raw, ATTN_P> score_vec;
struct attn_stat {
    score_raw m[ATTN_P];
    recip_t::raw r[ATTN_P];
};
const int HD_BEATS = (HEAD_DIM + ATTN_LANES - 1) / ATTN_LANES;  // beats of one head row
const int N_GROUPS = (N_TOKENS + ATTN_P - 1) / ATTN_P;
const int KV_WORDS = N_HEAD * N_TOKENS * HD_BEATS;

static inline exp_t::raw expn(const ap_int<score_t::W + 1>& x) {
    return exp_neg<score_t, exp_t, exp_entry_t, log2e_t, EXP_STEP_LOG2, EXP_N>(x, EXP_TAB, LOG2E_CODE);
}

// qkv words one beat spans: ATTN_LANES / T_IN of them when beats and head columns are aligned to
// the words (m3vit-tiny: 1 for w16a32, 2 for int8), one more otherwise
const bool KV_ALIGNED = (T_IN % ATTN_LANES == 0 || ATTN_LANES % T_IN == 0) && N_EMBD % ATTN_LANES == 0 &&
                        HEAD_DIM % ATTN_LANES == 0 &&
                        (ATTN_LANES <= T_IN || (N_EMBD % T_IN == 0 && HEAD_DIM % T_IN == 0));
const int KV_SPAN = KV_ALIGNED ? (ATTN_LANES + T_IN - 1) / T_IN : (ATTN_LANES + T_IN - 2) / T_IN + 1;

// One beat: columns [c0, c0 + ATTN_LANES) of a qkv row (KV_SPAN word reads), zero from column lim on.
static inline kv_word qkv_beat(const fm_word* row, int c0, int lim) {
    fm_word wd[KV_SPAN];
#pragma HLS ARRAY_PARTITION variable = wd complete
    const int w0 = c0 / T_IN;
    for (int s = 0; s < KV_SPAN; s++) wd[s] = w0 + s < QKV_WORDS ? row[w0 + s] : fm_word::zero();
    kv_word v;
    for (int l = 0; l < ATTN_LANES; l++) {
        const int c = c0 + l, s = c / T_IN - w0;
        v[l] = c < lim && s < KV_SPAN ? act_raw(wd[s][c % T_IN]) : act_raw(0);
    }
    return v;
}

static void attn_read(const fm_word* qkv, kv_word kbuf[KV_WORDS], kv_word vbuf[KV_WORDS],
                      hls::stream<kv_word>& q_s) {
    // II=1 (KV_SPAN <= 2, dual-port qkv): one K beat a cycle, then one V beat a cycle
    for (int kv = 1; kv <= 2; kv++)
        for (int j = 0; j < N_TOKENS; j++)
            for (int h = 0; h < N_HEAD; h++)
                for (int b = 0; b < HD_BEATS; b++) {
#pragma HLS PIPELINE II = 1
                    const int c0 = kv * N_EMBD + h * HEAD_DIM + b * ATTN_LANES;
                    const kv_word v = qkv_beat(qkv + j * QKV_WORDS, c0, kv * N_EMBD + (h + 1) * HEAD_DIM);
                    if (kv == 1) kbuf[(h * N_TOKENS + j) * HD_BEATS + b] = v;
                    else vbuf[(h * N_TOKENS + j) * HD_BEATS + b] = v;
                }
    // II=1 (KV_SPAN <= 2): Q beats in the order the score stage takes them (head, group, row,
    // beat); rows past the last token pad the last group with zeros
    for (int h = 0; h < N_HEAD; h++)
        for (int g = 0; g < N_GROUPS; g++)
            for (int p = 0; p < ATTN_P; p++)
                for (int b = 0; b < HD_BEATS; b++) {
#pragma HLS PIPELINE II = 1
                    const int i = g * ATTN_P + p;
                    const int c0 = h * HEAD_DIM + b * ATTN_LANES, lim = (h + 1) * HEAD_DIM;
                    q_s.write(i < N_TOKENS ? qkv_beat(qkv + i * QKV_WORDS, c0, lim) : kv_word::zero());
                }
}

static void attn_qk(const kv_word kbuf[KV_WORDS], hls::stream<kv_word>& q_s, hls::stream<score_vec>& sc_s) {
    for (int h = 0; h < N_HEAD; h++)
        for (int g = 0; g < N_GROUPS; g++) {
            kv_word q[ATTN_P][HD_BEATS];  // the group's query rows
#pragma HLS ARRAY_PARTITION variable = q complete dim = 1
            // II=1: one Q beat a cycle
            for (int i = 0; i < ATTN_P * HD_BEATS; i++) {
#pragma HLS PIPELINE II = 1
                q[i / HD_BEATS][i % HD_BEATS] = q_s.read();
            }
            ap_int<DOT_W> dot[ATTN_P];
#pragma HLS ARRAY_PARTITION variable = dot complete
            // II=1: one K beat a cycle, used by the ATTN_P query rows at once (ATTN_P x ATTN_LANES MACs)
            for (int j = 0; j < N_TOKENS; j++)
                for (int b = 0; b < HD_BEATS; b++) {
#pragma HLS PIPELINE II = 1
                    const kv_word k = kbuf[(h * N_TOKENS + j) * HD_BEATS + b];
                    for (int p = 0; p < ATTN_P; p++) {
                        ap_int<DOT_W> d = b == 0 ? ap_int<DOT_W>(0) : dot[p];
                        for (int l = 0; l < ATTN_LANES; l++) d += mul(q[p][b][l], k[l]);
                        dot[p] = d;
                    }
                    if (b == HD_BEATS - 1) {
                        score_vec sc;
                        for (int p = 0; p < ATTN_P; p++) sc[p] = requant<score_t, 2 * act_t::F>(dot[p]);
                        sc_s.write(sc);
                    }
                }
        }
}

static void attn_softmax(hls::stream<score_vec>& sc_in, hls::stream<score_vec>& sc_out,
                         hls::stream<attn_stat>& st_s) {
    for (int h = 0; h < N_HEAD; h++)
        for (int g = 0; g < N_GROUPS; g++) {
            score_raw m[ATTN_P];       // running max of each row
            exp_sum_t::raw s[ATTN_P];  // running sum of e^(score - max)
            score_vec v;
            int j = 0, p = 0;
            // II=1: one (key, row) pair a cycle, the ATTN_P rows of the group in turn (p fastest).
            // Row p's m[p], s[p] are read and written once every ATTN_P iterations, so the
            // recurrence through exp, multiply and requantisation has distance ATTN_P: legal at II=1
            // as long as its latency is at most ATTN_P cycles (more latency raises the II, it never
            // changes the result); the keys of one row stay in order j = 0..T-1 as the spec requires.
            for (int i = 0; i < N_TOKENS * ATTN_P; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = m inter RAW distance = ATTN_P true
#pragma HLS DEPENDENCE variable = s inter RAW distance = ATTN_P true
                if (p == 0) {
                    v = sc_in.read();
                    sc_out.write(v);
                }
                const score_raw sc = v[p];
                if (j == 0) {
                    m[p] = sc;
                    s[p] = requant<exp_sum_t, exp_t::F>(expn(0));
                } else {
                    const score_raw mn = sc > m[p] ? sc : m[p];
                    const exp_sum_t::raw r = requant<exp_sum_t, exp_sum_t::F + exp_t::F>(s[p] * expn(m[p] - mn));
                    s[p] = fit<exp_sum_t>(r + shift_round<exp_t::F - exp_sum_t::F, exp_sum_t::Q>(expn(sc - mn)));
                    m[p] = mn;
                }
                if (++p == ATTN_P) {
                    p = 0;
                    j++;
                }
            }
            attn_stat st;
            for (int q = 0; q < ATTN_P; q++) {  // 1/sum once per row
                st.m[q] = m[q];
                st.r[q] = reciprocal<exp_sum_t, recip_t, recip_entry_t, RECIP_STEP_LOG2, RECIP_N>(s[q], RECIP_TAB);
            }
            st_s.write(st);
        }
}

typedef vec<ap_int<AV_W>, ATTN_LANES> av_word;

// o[i][h*HD + d] = rq(shift(acc[d], F_exp) * r, act) for the head's columns of row i.
static void attn_write_row(const av_word acc[HD_BEATS], const recip_t::raw& r, int h, fm_word* row) {
    act_raw ov[HEAD_DIM];
#pragma HLS ARRAY_PARTITION variable = ov complete
    // II=1: one beat of ATTN_LANES outputs a cycle
    for (int b = 0; b < HD_BEATS; b++) {
#pragma HLS PIPELINE II = 1
        for (int l = 0; l < ATTN_LANES; l++) {
            const int d = b * ATTN_LANES + l;
            if (d < HEAD_DIM) {
                const ap_int<AV_W - exp_t::F + 2> av = shift_round<exp_t::F, TRN>(acc[b][l]);
                ov[d] = requant<act_t, act_t::F + recip_t::F>(av * r);
            }
        }
    }
    const int c0 = h * HEAD_DIM, w0 = c0 / T_IN, w1 = (c0 + HEAD_DIM - 1) / T_IN;
    // II=1: one output word read-modified-written a cycle
    for (int w = w0; w <= w1; w++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HEAD_DIM / T_IN + 2
        fm_word v = row[w];
        for (int l = 0; l < T_IN; l++) {
            const int d = w * T_IN + l - c0;
            if (d >= 0 && d < HEAD_DIM) v[l] = ov[d];
        }
        row[w] = v;
    }
}

static void attn_av(const kv_word vbuf[KV_WORDS], hls::stream<score_vec>& sc_s, hls::stream<attn_stat>& st_s,
                    fm_word* o) {
    static score_vec sc[N_TOKENS];  // the group's scores (the statistics come after the last key)
    for (int h = 0; h < N_HEAD; h++)
        for (int g = 0; g < N_GROUPS; g++) {
            // II=1: one key's P scores a cycle
            for (int j = 0; j < N_TOKENS; j++) {
#pragma HLS PIPELINE II = 1
                sc[j] = sc_s.read();
            }
            const attn_stat st = st_s.read();
            av_word acc[ATTN_P][HD_BEATS];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
            for (int b = 0; b < HD_BEATS; b++) {
#pragma HLS PIPELINE II = 1
                for (int p = 0; p < ATTN_P; p++) acc[p][b] = av_word::zero();
            }
            exp_t::raw e[ATTN_P];
#pragma HLS ARRAY_PARTITION variable = e complete
            // II=1: one V beat a cycle, shared by the ATTN_P rows (ATTN_P x ATTN_LANES MACs); the P
            // weights e^(s - m) of key j are computed on its first beat (P exp units)
            for (int j = 0; j < N_TOKENS; j++)
                for (int b = 0; b < HD_BEATS; b++) {
#pragma HLS PIPELINE II = 1
                    if (b == 0)
                        for (int p = 0; p < ATTN_P; p++) e[p] = expn(ap_int<score_t::W + 1>(sc[j][p]) - st.m[p]);
                    const kv_word v = vbuf[(h * N_TOKENS + j) * HD_BEATS + b];
                    for (int p = 0; p < ATTN_P; p++)
                        for (int l = 0; l < ATTN_LANES; l++) acc[p][b][l] += mul(e[p], v[l]);
                }
            for (int p = 0; p < ATTN_P; p++) {
                const int i = g * ATTN_P + p;
                if (i < N_TOKENS) attn_write_row(acc[p], st.r[p], h, o + i * D_WORDS);
            }
        }
}

static void attention_core(const fm_word* qkv, fm_word* o) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
#ifndef __SYNTHESIS__
    static  // C-simulation: the channel buffers off the stack (synthesis: ping-pong channels)
#endif
        kv_word kbuf[KV_WORDS],
        vbuf[KV_WORDS];  // K and V of every head, on chip
    hls::stream<kv_word> q_s("attn_q");
    hls::stream<score_vec> sc_qk("attn_scores"), sc_av("attn_scores_av");
    hls::stream<attn_stat> st_s("attn_stats");
#pragma HLS STREAM variable = q_s depth = ATTN_P * HD_BEATS
#pragma HLS STREAM variable = sc_qk depth = N_TOKENS
#pragma HLS STREAM variable = sc_av depth = N_TOKENS
#pragma HLS STREAM variable = st_s depth = 2
    attn_read(qkv, kbuf, vbuf, q_s);
    attn_qk(kbuf, q_s, sc_qk);
    attn_softmax(sc_qk, sc_av, st_s);
    attn_av(vbuf, sc_av, st_s, o);
}

// ---- router: gate of every token for the task, top-k with ties to the lower expert ---------------
// The choices go straight into the experts' token queues (accel_router.sv): token t's k-th choice e
// appends (t, k) to expert e's queue, so each queue is in token order, a token at most once in it.
static void router(const fm_word* x, int task, const axi_word* mem, const axi_word* mem1, int layer, fm_word* xin,
                   out_vec* logits, gate_raw gate[N_TOKENS * TOP_K], token_id q_tok[Q_ENTRIES],
                   slot_id q_slot[Q_ENTRIES], queue_len q_len[N_EXPERTS]) {
#pragma HLS INLINE
    const int w_off = OFF_ROUTER_W[layer] + (N_ROUTERS > 1 ? task * STRIDE_ROUTER_W : 0);
    if (ROUTER_KIND == 2) {  // task-conditioned: add the task embedding (bias type) first
        const int FA = act_t::F, FB = bias_t::F, F = FA > FB ? FA : FB;
        const int EW = cmax<act_t::W + F - FA, bias_t::W + F - FB>::v + 1;
        static bias_raw temb[N_EMBD];
#pragma HLS ARRAY_PARTITION variable = temb cyclic factor = ROW_BANKS
        load_row<N_EMBD>(mem, OFF_TASK_EMB[layer] + task * STRIDE_TASK_EMB, temb);
        // II=1: one word a cycle
        for (int i = 0; i < N_TOKENS * D_WORDS; i++) {
#pragma HLS PIPELINE II = 1
            const fm_word v = x[i];
            fm_word o;
            for (int l = 0; l < T_IN; l++) {
                const int d = (i % D_WORDS) * T_IN + l;
                o[l] = d < N_EMBD ? fm_raw(requant<act_t, F>((ap_int<EW>(act_raw(v[l])) << (F - FA)) +
                                                               (ap_int<EW>(temb[d]) << (F - FB))))
                                  : fm_raw(0);
            }
            xin[i] = o;
        }
        linear_unit(xin, N_TOKENS, N_EMBD, N_EXPERTS, mem, mem1, w_off, -1, LU_IN_ACT, LU_OUT_LOGIT, xin, logits);
    } else {
        linear_unit(x, N_TOKENS, N_EMBD, N_EXPERTS, mem, mem1, w_off, -1, LU_IN_ACT, LU_OUT_LOGIT, xin, logits);
    }
    const int EXW = exp_t::W + clog2<N_EXPERTS + 1>::v;
    queue_len len[N_EXPERTS];
#pragma HLS ARRAY_PARTITION variable = len complete
    for (int j = 0; j < N_EXPERTS; j++) len[j] = 0;
    // II=1: one token a cycle (E exponentials, one reciprocal, E gates, TOP_K x E compares, TOP_K queue
    // appends to distinct experts: q_tok / q_slot are partitioned by expert, one bank each)
    for (int t = 0; t < N_TOKENS; t++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = q_tok inter false
#pragma HLS DEPENDENCE variable = q_slot inter false
        router_logit_t::raw lg[N_EXPERTS];
        exp_t::raw e[N_EXPERTS];
        gate_raw g[N_EXPERTS];
        bool taken[N_EXPERTS];
#pragma HLS ARRAY_PARTITION variable = lg complete
#pragma HLS ARRAY_PARTITION variable = e complete
#pragma HLS ARRAY_PARTITION variable = g complete
#pragma HLS ARRAY_PARTITION variable = taken complete
        for (int j = 0; j < N_EXPERTS; j++) {
            lg[j] = router_logit_t::raw(logits[t * E_TILES + j / T_OUT][j % T_OUT]);
            taken[j] = false;
        }
        router_logit_t::raw mx = lg[0];
        for (int j = 1; j < N_EXPERTS; j++) mx = lg[j] > mx ? lg[j] : mx;
        ap_uint<EXW> sum = 0;
        for (int j = 0; j < N_EXPERTS; j++) {
            e[j] = exp_neg<router_logit_t, exp_t, exp_entry_t, log2e_t, EXP_STEP_LOG2, EXP_N>(
                ap_int<router_logit_t::W + 1>(lg[j]) - mx, EXP_TAB, LOG2E_CODE);
            sum += e[j];
        }
        const exp_sum_t::raw s = requant<exp_sum_t, exp_t::F>(sum);
        const recip_t::raw r = reciprocal<exp_sum_t, recip_t, recip_entry_t, RECIP_STEP_LOG2, RECIP_N>(s, RECIP_TAB);
        for (int j = 0; j < N_EXPERTS; j++) g[j] = requant<gate_t, exp_t::F + recip_t::F>(e[j] * r);
        for (int k = 0; k < TOP_K; k++) {
            int best = -1;
            for (int j = 0; j < N_EXPERTS; j++)  // strict '>' scanning upwards: ties go to the lower index
                if (!taken[j] && (best < 0 || g[j] > g[best])) best = j;
            taken[best] = true;
            gate[t * TOP_K + k] = g[best];
            q_tok[best * N_TOKENS + len[best]] = t;
            q_slot[best * N_TOKENS + len[best]] = k;
            len[best]++;
        }
    }
    for (int j = 0; j < N_EXPERTS; j++) q_len[j] = len[j];
}

// ---- MoE: experts one after another over their token queues ----------------------------------------
// x: the LayerNorm output, an expert's rows read through its queue (no gathered copy); hs: its hidden
// rows; out: its W2 rows; sum: the gated sums of every token, exact, accumulated here and read (and
// cleared) by residual_sum (logits: the linear unit's logit port, unused by the experts' calls).
static void moe(const fm_word* x, const gate_raw gate[N_TOKENS * TOP_K], const token_id q_tok[Q_ENTRIES],
                const slot_id q_slot[Q_ENTRIES], const queue_len q_len[N_EXPERTS], const axi_word* mem,
                const axi_word* mem1, int layer, fm_word* hs, fm_word* out, sum_word* sum, out_vec* logits) {
#pragma HLS INLINE
    for (int e = 0; e < N_EXPERTS; e++) {
        const int n = q_len[e], q0 = e * N_TOKENS;
        if (n == 0) continue;
        linear_unit(x, n, N_EMBD, EXPERT_HIDDEN, mem, mem1, OFF_EXP_W1[layer] + e * STRIDE_EXP_W1,
                    OFF_EXP_B1[layer] + e * STRIDE_EXP_B1, LU_IN_ACT, LU_OUT_ACT, hs, logits, q_tok, q0);
        gelu_rows(hs, n, EXPERT_HIDDEN);
        linear_unit(hs, n, EXPERT_HIDDEN, N_EMBD, mem, mem1, OFF_EXP_W2[layer] + e * STRIDE_EXP_W2,
                    OFF_EXP_B2[layer] + e * STRIDE_EXP_B2, LU_IN_ACT, LU_OUT_ACT, out, logits);
        int r = 0, w = 0;
        // II=1: one word of a queued token a cycle; a token is in an expert's queue once, so no two
        // iterations touch the same sum word
        for (int i = 0; i < n * D_WORDS; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = D_WORDS max = N_TOKENS * D_WORDS
#pragma HLS DEPENDENCE variable = sum inter false
            const int tok = q_tok[q0 + r];
            const gate_raw gv = gate[tok * TOP_K + q_slot[q0 + r]];
            const fm_word y = out[i];
            sum_word s = sum[tok * D_WORDS + w];
            for (int l = 0; l < T_IN; l++)
                if (w * T_IN + l < N_EMBD) s[l] += requant<act_t, act_t::F + gate_t::F>(act_raw(y[l]) * gv);
            sum[tok * D_WORDS + w] = s;
            if (++w == D_WORDS) {
                w = 0;
                r++;
            }
        }
    }
}

// ---- features out: (D, GRID_H, GRID_W) act codes of batch entry b in DDR order -------------------
// carry: the AXI word being filled (image b's first codes may share a word with image b-1's last).
static void write_features(const fm_word* h, int b, axi_word* features, axi_word& carry) {
    const int SB = 8 * OUT_BYTES, PER = AXI_BITS / SB;
    const int g0 = b * N_OUT;
    int d = 0, p = 0;
    // II=1: one feature code a cycle, one AXI beat written every PER codes (one burst)
    for (int i = 0; i < N_OUT; i++) {
#pragma HLS PIPELINE II = 1
        const int g = g0 + i, l = g % PER;
        const act_raw v = act_raw(h[(p + 1) * D_WORDS + d / T_IN][d % T_IN]);  // token p + 1: no cls
        ap_uint<SB> field = ap_int<SB>(v);  // sign-extended into its storage bytes
        carry.range(l * SB + SB - 1, l * SB) = field;
        if (l == PER - 1) features[g / PER] = carry;
        if (++p == N_PATCHES) {
            p = 0;
            d++;
        }
    }
}

// ---- the task heads: DDR -> DDR passes (hls_export.head_schedule, golden GoldenModel._head) ------
// Head feature maps do not fit on chip (m3vit-tiny: 64 channels at 64 x 128), so each pass reads its
// input map from DDR and writes its output map to DDR, in the output buffer behind the n_images
// predictions: two scratch maps of SCRATCH_WORDS words (ping-pong, HEAD_SRC / HEAD_DST), each
// pixel-major: pixel (y, x) of a C-channel map is HEAD_PX_WORDS(C) AXI words from word
// (y * w + x) * HEAD_PX_WORDS(C), its codes packed at OUT_BYTES as the features are. The last pass
// writes the prediction (OUT_CH[task], IMG_H, IMG_W) act codes channel-major at b * PRED_WORDS.
// The passes borrow the backbone's buffers (free once the final LayerNorm's output H is in DDR):
//  - conv3x3 / 1x1 (HEAD_KIND 0): a band of HEAD_BAND[i] output rows at a time (the most that fit,
//    hls_export.head_schedule): its input rows and halo into QKV (band), im2col rows into HID
//    (cols, (channel, ky, kx) order as the patch embedding's), the shared linear_unit (weights
//    tile-major at OFF_HEAD_W[task * N_HEAD_OPS + i]: the task register selects them) into F, ReLU
//    at the store;
//  - bilinear x 2^LFH, 2^LFW (HEAD_KIND 1, ARITHMETIC.md, golden _upsample_axis): per output row the
//    two source rows into QKV and F, each output code the exact 4-term sum, one rounding.
const int IO_PER = AXI_BITS / (8 * OUT_BYTES);  // act codes in one AXI word
const int HEAD_CW_MAX = (HEAD_C_MAX + T_IN - 1) / T_IN;
const int HEAD_K9W_MAX = (9 * HEAD_C_MAX + T_IN - 1) / T_IN;
static inline int head_px_words(int c) { return (c + IO_PER - 1) / IO_PER; }
template <int A, int B>
struct gcd_of { static const int v = gcd_of<B, A % B>::v; };
template <int A>
struct gcd_of<A, 0> { static const int v = A; };
// Codes a cycle of the loops between the io port's pixel-major words and fm words: HEAD_G divides
// both IO_PER and T_IN, so a step's codes lie in one AXI beat and one fm word (an AXI beat every
// IO_PER / HEAD_G steps, an fm word every T_IN / HEAD_G; the presets: min(IO_PER, T_IN), so either a
// beat a cycle or an fm word a cycle). A pixel of c channels takes head_px_steps(c) steps: the longer
// of its HEAD_PX_WORDS(c) beats and its ceil(c / T_IN) fm words.
const int HEAD_G = gcd_of<IO_PER, T_IN>::v;
static inline int head_px_steps(int c) {
    const int a = head_px_words(c) * IO_PER, f = (c + T_IN - 1) / T_IN * T_IN;
    return (a > f ? a : f) / HEAD_G;
}
const int HEAD_STEPS_MAX = N_TOKENS * QKV_WORDS * T_IN / HEAD_G;  // a band of QKV's words, at most

// Storage field of code k of a pixel (its lane k % IO_PER of an AXI word), sign-extended to OUT_BYTES.
static inline void head_field(axi_word& w, int k, const act_raw& v) {
    const int l = k % IO_PER;
    w.range(l * 8 * OUT_BYTES + 8 * OUT_BYTES - 1, l * 8 * OUT_BYTES) = ap_uint<8 * OUT_BYTES>(ap_int<8 * OUT_BYTES>(v));
}

// rows [y0, y0 + n) of a (c, h, w) pixel-major map at word base -> band, fm words pixel-major
// (pixel (r, x) at (r * w + x) * cw); rows outside [0, h) are zero (the conv's padding).
static void head_read_rows(const axi_word* io, int base, int c, int h, int w, int y0, int n, fm_word* band) {
    const int pw = head_px_words(c), cw = (c + T_IN - 1) / T_IN, S = head_px_steps(c);
    axi_word beat = 0;
    fm_word v;
    int r = 0, x = 0, j = 0;  // pixel (r, x), its step j: codes j HEAD_G .. + HEAD_G - 1
    // II=1: HEAD_G codes a cycle, an AXI beat every IO_PER / HEAD_G cycles (a row's beats are
    // contiguous: a burst per row), a band word written every T_IN / HEAD_G cycles
    for (int i = 0; i < n * w * S; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HEAD_STEPS_MAX
        const int y = y0 + r, k0 = j * HEAD_G;
        const bool in = y >= 0 && y < h;
        if (in && k0 % IO_PER == 0 && k0 / IO_PER < pw) beat = io[base + (y * w + x) * pw + k0 / IO_PER];
        for (int l = 0; l < HEAD_G; l++) {
#pragma HLS UNROLL
            const int k = k0 + l;
            v[k % T_IN] = in && k < c ? fm_raw(act_raw(beat_field<act_t::W, 8 * OUT_BYTES>(beat, k % IO_PER)))
                                      : fm_raw(0);
        }
        if (k0 % T_IN == T_IN - HEAD_G && k0 / T_IN < cw) band[(r * w + x) * cw + k0 / T_IN] = v;
        if (++j == S) {
            j = 0;
            if (++x == w) {
                x = 0;
                r++;
            }
        }
    }
}

// npx pixels of c channels, fm words pixel-major (pixel p at src[(first + p) * sw ..]) -> pixel-major
// io words from dst (HEAD_PX_WORDS(c) a pixel, one burst), ReLU if relu.
static void head_pack_rows(const fm_word* src, int sw, int first, int c, int npx, bool relu, axi_word* io,
                           int dst) {
    const int pw = head_px_words(c), cw = (c + T_IN - 1) / T_IN, S = head_px_steps(c);
    axi_word carry = 0;
    fm_word v = fm_word::zero();
    int p = 0, j = 0;
    // II=1: HEAD_G codes a cycle, an fm word read every T_IN / HEAD_G cycles, an AXI beat written
    // every IO_PER / HEAD_G cycles (consecutive words: one burst)
    for (int i = 0; i < npx * S; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HEAD_STEPS_MAX
        const int k0 = j * HEAD_G;
        if (k0 % T_IN == 0 && k0 / T_IN < cw) v = src[(first + p) * sw + k0 / T_IN];
        for (int l = 0; l < HEAD_G; l++) {
#pragma HLS UNROLL
            const int k = k0 + l;
            act_raw a = k < c ? act_raw(v[k % T_IN]) : act_raw(0);
            if (relu && a < 0) a = 0;
            head_field(carry, k, a);
        }
        if (k0 % IO_PER == IO_PER - HEAD_G && k0 / IO_PER < pw) io[dst + p * pw + k0 / IO_PER] = carry;
        if (++j == S) {
            j = 0;
            p++;
        }
    }
}

// The features H (token rows; token p + 1 is pixel p) -> scratch map 0, pixel-major.
static void head_store_grid(const fm_word* h, axi_word* io, int base) {
    head_pack_rows(h, D_WORDS, 1, N_EMBD, N_PATCHES, false, io, base);
}

// Code g of a channel-major run into io (word base): the AXI word being filled is `carry`; a run
// that starts or ends inside a word keeps that word's other codes (read-modify-write).
static inline void head_put(axi_word* io, int base, int g, const act_raw& v, bool first, bool last,
                            axi_word& carry) {
    const int l = g % IO_PER;
    if (first && l != 0) carry = io[base + g / IO_PER];
    carry.range(l * 8 * OUT_BYTES + 8 * OUT_BYTES - 1, l * 8 * OUT_BYTES) = ap_uint<8 * OUT_BYTES>(ap_int<8 * OUT_BYTES>(v));
    if (l == IO_PER - 1 || last) {
        if (last && l != IO_PER - 1) {  // keep the codes after the run
            const axi_word old = io[base + g / IO_PER];
            carry.range(AXI_BITS - 1, (l + 1) * 8 * OUT_BYTES) = old.range(AXI_BITS - 1, (l + 1) * 8 * OUT_BYTES);
        }
        io[base + g / IO_PER] = carry;
    }
}

// Output rows [y0, y0 + n) of width w, c channels, from fm words out (pixel (r, x) at (r * w + x) *
// cw) to scratch (pixel-major, dst < 2) or to the prediction (channel-major, image h x w), ReLU if relu.
static void head_write_rows(const fm_word* out, int c, int h, int w, int y0, int n, bool relu, bool to_pred,
                            axi_word* io, int base) {
    const int cw = (c + T_IN - 1) / T_IN, pw = head_px_words(c);
    axi_word carry = 0;
    if (!to_pred) {
        head_pack_rows(out, cw, 0, c, n * w, relu, io, base + y0 * w * pw);
    } else {
        int ch = 0, r = 0, x = 0;
        // II=1: one code a cycle; channel ch's rows y0.. are one run of n * w codes (one burst)
        for (int i = 0; i < c * n * w; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_ROWS * HEAD_C_MAX
            act_raw v = act_raw(out[(r * w + x) * cw + ch / T_IN][ch % T_IN]);
            if (relu && v < 0) v = 0;
            head_put(io, base, (ch * h + y0 + r) * w + x, v, r == 0 && x == 0, r == n - 1 && x == w - 1, carry);
            if (++x == w) {
                x = 0;
                if (++r == n) {
                    r = 0;
                    ch++;
                }
            }
        }
    }
}

// im2col of a band: output pixel (r, x) of n rows, word kw of its 9 * c codes (channel, ky, kx),
// from band rows r .. r + 2 (band row 0 is input row y0 - 1); columns outside [0, w) are zero.
// Word-wide by groups: band word q of a pixel (channels q T_IN .. + T_IN - 1) read at the 9 taps
// holds exactly the pixel's codes k = 9 q T_IN .. + 9 T_IN - 1, i.e. its cols words 9 q .. 9 q + 8
// (9 q T_IN is a multiple of T_IN), so a group of 9 cycles reads one band word a cycle (tap t into
// the register tap[t]) while the previous group's 9 cols words go out, one a cycle, from full (a
// copy of tap taken at the group's end; lane l of word m is full[(m T_IN + l) % 9][(m T_IN + l) / 9],
// a 9-way mux per lane). Words 9 q + m >= kw9 (c not a multiple of T_IN) are not written: their
// codes are channels >= c, zero in the band.
static void head_im2col(const fm_word* band, int c, int w, int n, fm_word* cols) {
    const int cw = (c + T_IN - 1) / T_IN, kw9 = (9 * c + T_IN - 1) / T_IN, groups = n * w * cw;
    fm_word tap[9], full[9];
#pragma HLS ARRAY_PARTITION variable = tap complete
#pragma HLS ARRAY_PARTITION variable = full complete
    int r = 0, x = 0, q = 0, t = 0;  // the group being read: pixel (r, x), band word q; its tap t
    int po = 0, pn = 0;              // the previous group: its first cols word, its words to write
    // II=1: one band word read (tap t of this group) and one cols word written (word t of the group
    // before) a cycle; one drain group at the end
    for (int i = 0; i < (groups + 1) * 9; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 18 max = (MAX_ROWS * HEAD_CW_MAX + 1) * 9
        if (t < pn) {
            fm_word v;
            for (int l = 0; l < T_IN; l++) {
#pragma HLS UNROLL
                const int kk = t * T_IN + l;
                v[l] = full[kk % 9][kk / 9];
            }
            cols[po + t] = v;
        }
        const int ky = t / 3, xx = x + t % 3 - 1;
        fm_word b = fm_word::zero();
        if (i < groups * 9 && xx >= 0 && xx < w) b = band[((r + ky) * w + xx) * cw + q];
        tap[t] = b;
        if (t == 8) {
            for (int j = 0; j < 9; j++) {
#pragma HLS UNROLL
                full[j] = tap[j];
            }
            po = (r * w + x) * kw9 + 9 * q;
            pn = kw9 - 9 * q < 9 ? kw9 - 9 * q : 9;
            t = 0;
            if (++q == cw) {
                q = 0;
                if (++x == w) {
                    x = 0;
                    r++;
                }
            }
        } else {
            t++;
        }
    }
}

// One conv pass (k 3 pad 1, or k 1), band by band through the shared linear unit.
static void head_conv(int op, int task, int cout, const axi_word* mem, const axi_word* mem1, axi_word* io,
                      int src, int dst, bool to_pred, fm_word* band, fm_word* cols, fm_word* out, out_vec* logits) {
    const int c = HEAD_CIN[op], h = HEAD_H[op], w = HEAD_W[op], k = HEAD_K[op], nb = HEAD_BAND[op];
    const int w_off = OFF_HEAD_W[task * N_HEAD_OPS + op], b_off = OFF_HEAD_B[task * N_HEAD_OPS + op];
    for (int y0 = 0; y0 < h; y0 += nb) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HEAD_HW_MAX
        const int n = y0 + nb <= h ? nb : h - y0;
        if (k == 3) {
            head_read_rows(io, src, c, h, w, y0 - 1, n + 2, band);
            head_im2col(band, c, w, n, cols);
        } else {
            head_read_rows(io, src, c, h, w, y0, n, cols);  // 1x1: a pixel's channels are its row
        }
        linear_unit(cols, n * w, k * k * c, cout, mem, mem1, w_off, b_off, LU_IN_ACT, LU_OUT_ACT, out, logits);
        head_write_rows(out, cout, h, w, y0, n, HEAD_RELU[op] != 0, to_pred, io, dst);
    }
}

// Source index, weight of the second source (units 1 / 2^(LF+1)) of output i of a x 2^LF axis of n.
template <int LF>
static inline void head_up_src(int i, int n, int& i0, int& i1, int& lam) {
    const int f = 1 << LF, s0 = 2 * i + 1 - f, s = s0 > 0 ? s0 : 0;
    i0 = s >> (LF + 1);
    lam = s - (i0 << (LF + 1));
    i1 = i0 + 1 < n ? i0 + 1 : n - 1;
}

// One bilinear pass x 2^LFH, 2^LFW (align_corners=False, exact): output row Y from its two source
// rows (on chip: row0 in QKV, row1 in F); each code sum_{a,b} x[a][b] * wy[a] * wx[b], then one
// rounding to act. The weights of an axis sum to 2^(LF+1) (wx0 = 2^(LFW+1) - lx), so each sum is
// the same integer with one multiplier an axis: wx0 a + lx b = (a << (LFW+1)) + lx (b - a) for both
// source rows, then likewise along y: 3 multipliers a code (lx, ly of LF + 1 bits). The output loop
// computes HEAD_G codes of one band word a cycle (lanes k0 .. k0 + HEAD_G - 1 of pixel X: the words
// at x0 and x1 of each source row, two reads of each over its 2 RAM ports, 3 HEAD_G multipliers):
// pixel-major, all of them go to the AXI word being filled (an
// AXI beat every IO_PER / HEAD_G cycles); the prediction (channel-major: consecutive codes are
// consecutive X of one channel, each X in other source words) takes one of them a cycle, its
// channel's lane, on the same multipliers.
template <int LFH, int LFW>
static void head_upsample(int op, int c, axi_word* io, int src, int dst, bool to_pred, fm_word* row0,
                          fm_word* row1) {
    const int h = HEAD_H[op], w = HEAD_W[op], H = h << LFH, W = w << LFW;
    const int cw = (c + T_IN - 1) / T_IN, pw = head_px_words(c), S = head_px_steps(c);
    const int EX = LFH + LFW + 2, SW = act_t::W + EX + 2;
    for (int Y = 0; Y < H; Y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HEAD_HW_MAX
        int y0, y1, ly;
        head_up_src<LFH>(Y, h, y0, y1, ly);
        head_read_rows(io, src, c, h, w, y0, 1, row0);
        head_read_rows(io, src, c, h, w, y1, 1, row1);
        const ap_uint<LFH + 1> lyn = ly;
        axi_word carry = 0;
        const int n_steps = to_pred ? c * W : W * S;
        int a = 0, b = 0;  // pixel-major: a = X, b = step; prediction: a = channel, b = X
        // II=1: HEAD_G codes a cycle (the prediction: one), 2 reads of each source row, 3 HEAD_G
        // multiplies, an AXI beat every IO_PER / HEAD_G cycles (the prediction: every IO_PER)
        for (int i = 0; i < n_steps; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = HEAD_W_MAX * 2 * HEAD_C_MAX
            const int X = to_pred ? b : a, k0 = to_pred ? a / HEAD_G * HEAD_G : b * HEAD_G, q = k0 / T_IN;
            int x0, x1, lx;
            head_up_src<LFW>(X, w, x0, x1, lx);
            const ap_uint<LFW + 1> lxn = lx;
            fm_word s00 = fm_word::zero(), s01 = fm_word::zero(), s10 = fm_word::zero(), s11 = fm_word::zero();
            if (q < cw) {
                s00 = row0[x0 * cw + q];
                s01 = row0[x1 * cw + q];
                s10 = row1[x0 * cw + q];
                s11 = row1[x1 * cw + q];
            }
            act_raw v[HEAD_G];
#pragma HLS ARRAY_PARTITION variable = v complete
            for (int l = 0; l < HEAD_G; l++) {
#pragma HLS UNROLL
                const int k = k0 + l, e = k % T_IN;
                ap_int<SW> sum = 0;
                if (k < c) {
                    const act_raw a00 = act_raw(s00[e]), a10 = act_raw(s10[e]);
                    const ap_int<act_t::W + 1> d0 = act_raw(s01[e]) - a00, d1 = act_raw(s11[e]) - a10;
                    const ap_int<act_t::W + LFW + 3> r0 = (ap_int<act_t::W + LFW + 3>(a00) << (LFW + 1)) + d0 * lxn;
                    const ap_int<act_t::W + LFW + 3> r1 = (ap_int<act_t::W + LFW + 3>(a10) << (LFW + 1)) + d1 * lxn;
                    const ap_int<act_t::W + LFW + 4> dy = r1 - r0;
                    sum = (ap_int<SW>(r0) << (LFH + 1)) + dy * lyn;
                }
                v[l] = k < c ? act_raw(requant<act_t, act_t::F + EX>(sum)) : act_raw(0);
            }
            if (to_pred) {
                head_put(io, dst, (a * H + Y) * W + b, v[a % HEAD_G], b == 0, b == W - 1, carry);
                if (++b == W) {
                    b = 0;
                    a++;
                }
            } else {
                for (int l = 0; l < HEAD_G; l++) {
#pragma HLS UNROLL
                    head_field(carry, k0 + l, v[l]);
                }
                if (k0 % IO_PER == IO_PER - HEAD_G && k0 / IO_PER < pw) io[dst + (Y * W + a) * pw + k0 / IO_PER] = carry;
                if (++b == S) {
                    b = 0;
                    a++;
                }
            }
        }
    }
}

// The head of `task` for image b: features H -> scratch 0, the passes, the prediction at b * PRED_WORDS.
static void heads(const fm_word* H, int task, int b, int n_images, const axi_word* mem, const axi_word* mem1,
                  axi_word* io, fm_word* band, fm_word* cols, fm_word* out, out_vec* logits) {
#ifndef __SYNTHESIS__
    for (int i = 0; i < N_HEAD_OPS; i++)  // the schedule's bands fit the borrowed buffers (C-sim check)
        if (HEAD_KIND[i] == 0) {
            const int nb = HEAD_BAND[i], w = HEAD_W[i], c = HEAD_CIN[i], k = HEAD_K[i];
            const int co = HEAD_COUT[i] ? HEAD_COUT[i] : OUT_CH[task];
            if (nb < 1 || nb * w > MAX_ROWS || nb * w * ((k * k * c + T_IN - 1) / T_IN) > HID_WORDS ||
                (nb + k - 1) * w * ((c + T_IN - 1) / T_IN) > N_TOKENS * QKV_WORDS ||
                nb * w * ((co + T_IN - 1) / T_IN) > N_TOKENS * D_WORDS)
                g_wrap_overflows += 1000000;  // a schedule this build cannot hold: fail every comparison
        }
#endif
    const int s0 = n_images * PRED_WORDS, s1 = s0 + SCRATCH_WORDS, pred = b * PRED_WORDS;
    head_store_grid(H, io, s0);
    for (int i = 0; i < N_HEAD_OPS; i++) {
#pragma HLS LOOP_TRIPCOUNT min = N_HEAD_OPS max = N_HEAD_OPS
        const int src = HEAD_SRC[i] == 0 ? s0 : s1;
        const bool to_pred = HEAD_DST[i] == 2;
        const int dst = to_pred ? pred : HEAD_DST[i] == 0 ? s0 : s1;
        if (HEAD_KIND[i] == 0)
            head_conv(i, task, HEAD_COUT[i] ? HEAD_COUT[i] : OUT_CH[task], mem, mem1, io, src, dst, to_pred, band,
                      cols, out, logits);
        else if (HEAD_LFH[i] == 1 && HEAD_LFW[i] == 1)
            head_upsample<1, 1>(i, HEAD_CIN[i] ? HEAD_CIN[i] : OUT_CH[task], io, src, dst, to_pred, band, out);
        else
            head_upsample<HEAD_RESIZE_LFH, HEAD_RESIZE_LFW>(i, OUT_CH[task], io, src, dst, to_pred, band, out);
    }
}

// ---- the backbone for one image of the batch -----------------------------------------------------
// HEADS_ON_ACCEL: the task's head follows (heads above), features is the output buffer of
// predictions and scratch maps; otherwise the features are written (D, GRID_H, GRID_W).
static void backbone(const axi_word* mem, const axi_word* mem1, const axi_word* images, int b, int task,
                     int n_images, axi_word* features, axi_word& carry) {
#pragma HLS ALLOCATION function instances = linear_unit limit = 1
    static fm_raw img[IMG_ELEMS];
#pragma HLS ARRAY_PARTITION variable = img cyclic factor = T_IN
    static fm_word X[N_TOKENS * D_WORDS];  // the residual stream
    static fm_word H[N_TOKENS * D_WORDS];  // LayerNorm outputs
    static fm_word O[N_TOKENS * D_WORDS];  // attention output; the task-conditioned router's input
    static fm_word F[N_TOKENS * D_WORDS];  // patch embeddings; sublayer outputs
    static fm_word QKV[N_TOKENS * QKV_WORDS];
    static fm_word HID[HID_WORDS];  // im2col rows; MLP / expert hidden rows
    static out_vec LOGITS[N_TOKENS * E_TILES];
    static gate_raw gate[N_TOKENS * TOP_K];
    static token_id q_tok[Q_ENTRIES];  // the experts' token queues (router): token, slot; lengths
    static slot_id q_slot[Q_ENTRIES];
    static queue_len q_len[N_EXPERTS];
#pragma HLS ARRAY_PARTITION variable = q_tok block factor = N_EXPERTS
#pragma HLS ARRAY_PARTITION variable = q_slot block factor = N_EXPERTS
#pragma HLS ARRAY_PARTITION variable = q_len complete
    static sum_word SUM[N_TOKENS * D_WORDS];  // a MoE block's gated sums; zero between blocks
    read_image(images, b, img);
    im2col(img, HID);
    linear_unit(HID, N_PATCHES, KP, N_EMBD, mem, mem1, OFF_PATCH_W, OFF_PATCH_B, LU_IN_INPUT, LU_OUT_ACT, F, LOGITS);
    embed(F, mem, X);
    for (int l = 0; l < N_LAYER; l++) {
        layer_norm(X, mem, OFF_LN1_W[l], OFF_LN1_B[l], H);
        linear_unit(H, N_TOKENS, N_EMBD, 3 * N_EMBD, mem, mem1, OFF_QKV_W[l], OFF_QKV_B[l], LU_IN_ACT, LU_OUT_ACT, QKV,
                    LOGITS);
        attention_core(QKV, O);
        linear_unit(O, N_TOKENS, N_EMBD, N_EMBD, mem, mem1, OFF_PROJ_W[l], OFF_PROJ_B[l], LU_IN_ACT, LU_OUT_ACT, F,
                    LOGITS);
        residual(X, F);
        layer_norm(X, mem, OFF_LN2_W[l], OFF_LN2_B[l], H);
        if (IS_MOE[l]) {
            router(H, task, mem, mem1, l, O, LOGITS, gate, q_tok, q_slot, q_len);
            moe(H, gate, q_tok, q_slot, q_len, mem, mem1, l, HID, F, SUM, LOGITS);
            residual_sum(X, SUM);
        } else {
            const int HIDN = MLP_HIDDEN[l];
            linear_unit(H, N_TOKENS, N_EMBD, HIDN, mem, mem1, OFF_FC_W[l], OFF_FC_B[l], LU_IN_ACT, LU_OUT_ACT, HID,
                        LOGITS);
            gelu_rows(HID, N_TOKENS, HIDN);
            linear_unit(HID, N_TOKENS, HIDN, N_EMBD, mem, mem1, OFF_FC2_W[l], OFF_FC2_B[l], LU_IN_ACT, LU_OUT_ACT, F,
                        LOGITS);
            residual(X, F);
        }
    }
    // every token (the class token is dropped below); decoder pup: the task's own gamma / beta row
    layer_norm(X, mem, OFF_LNF_W + task * STRIDE_LNF, OFF_LNF_B + task * STRIDE_LNF, H);
    if (HEADS_ON_ACCEL) heads(H, task, b, n_images, mem, mem1, features, QKV, HID, F, LOGITS);
    else write_features(H, b, features, carry);
}

}  // namespace mtl_moe

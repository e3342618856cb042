// The accelerator's nonlinear functions on integer codes: the C++ twin of mtl_moe/nonlinear.py.
// No hls_math, no floating point: abs, shifts, masks, table reads, one multiply-add for the linear
// interpolation, one final rounding. The tables are generated into config.h from the same spec.
#pragma once
#include "fixed.h"

namespace mtl_moe {

// Linear interpolation in tab[n] at pos (pos_frac fractional bits, relative to the table start,
// table step 2^-step_log2). Returns codes with (entry frac bits + *r) fractional bits.
static inline i64 interp(const i64* tab, int n, i64 pos, int pos_frac, int step_log2, int* r) {
    *r = pos_frac - step_log2;
    if (*r <= 0) {
        i64 i = pos << -*r;
        *r = 0;
        return tab[i < n - 1 ? i : n - 1];
    }
    i64 idx = pos >> *r;
    if (idx > n - 2) idx = n - 2;
    i64 fr = pos - (idx << *r);
    i64 t0 = tab[idx], t1 = tab[idx + 1];
    return shl(t0, *r) + (t1 - t0) * fr;
}

// floor(log2(v)) of v > 0 (leading-one detection).
static inline int leading_one(i64 v) {
    int e = 0;
    while ((v >> 1) > 0) { v >>= 1; e++; }
    return e;
}

// GELU(x) = ReLU(x) - delta(|x|), delta tabulated on [0, x_max].
template <class X, class OUT, class ENTRY, int STEP_LOG2, int N>
static inline i64 gelu(i64 x, const i64* tab) {
    i64 a = x < 0 ? -x : x;
    int sh = X::F - STEP_LOG2;
    i64 last = sh >= 0 ? ((i64)(N - 1) << sh) : -((-(i64)(N - 1)) >> -sh);  // ceil((N-1) 2^sh)
    int r;
    i64 d = interp(tab, N, a < last ? a : last, X::F, STEP_LOG2, &r);
    if (a >= last) d = 0;
    int frac = ENTRY::F + r;
    int common = frac > X::F ? frac : X::F;
    i64 y = shl(x > 0 ? x : 0, common - X::F) - shl(d, common - frac);
    return requant<OUT>(y, common);
}

// e^x for x <= 0: 2^-u, u = -x log2(e); 2^-frac(u) from the table, then a shift by floor(u).
template <class X, class OUT, class ENTRY, class L2E, int STEP_LOG2, int N>
static inline i64 exp_neg(i64 x, const i64* tab, i64 log2e_code) {
    int uf = X::F + L2E::F;
    i64 u = (-x) * log2e_code;
    i64 n = u >> uf;
    i64 f = u - (n << uf);
    int r;
    i64 v = interp(tab, N, f, uf, STEP_LOG2, &r);
    int vf = ENTRY::F + r;
    if (n >= OUT::F + 2) return fit<OUT>(0);  // below half an output LSB: 0 in every mode
    return fit<OUT>(shift_round(v, vf + (int)n - OUT::F, OUT::Q));
}

// 1/v for v > 0: v = m 2^e, m in [1, 2); 1/m from the table, then a shift by e.
template <class V, class OUT, class ENTRY, int STEP_LOG2, int N>
static inline i64 reciprocal(i64 v, const i64* tab) {
    int e = leading_one(v);
    const int k = 62 - 2 * ENTRY::W;
    i64 m = e <= k ? (v << (k - e)) : (v >> (e - k));
    int r;
    i64 t = interp(tab, N, m - (1LL << k), k, STEP_LOG2, &r);
    return fit<OUT>(shift_round(t, ENTRY::F + r + (e - V::F) - OUT::F, OUT::Q));
}

// 1/sqrt(v) for v > 0: v = m 2^e with e even, m in [1, 4); 1/sqrt(m) from the table, shift e/2.
template <class V, class OUT, class ENTRY, int STEP_LOG2, int N>
static inline i64 rsqrt(i64 v, const i64* tab) {
    int e = leading_one(v) - V::F;
    e -= (e & 1);
    const int k = 62 - 2 * ENTRY::W - 2;
    int sh = e + V::F - k;
    i64 m = sh >= 0 ? (v >> sh) : (v << -sh);
    int r;
    i64 t = interp(tab, N, m - (1LL << k), k, STEP_LOG2, &r);
    return fit<OUT>(shift_round(t, ENTRY::F + r + e / 2 - OUT::F, OUT::Q));
}

}  // namespace mtl_moe

// The accelerator's nonlinear functions on integer codes: the C++ twin of mtl_moe/nonlinear.py.
// No hls_math, no floating point: abs, shifts, masks, table reads (ROMs generated into config.h),
// one multiply-add for the linear interpolation, one final rounding. Every intermediate is at the
// width its operands give it (derived at compile time from the types; none exceeds 64 bits for the
// presets, since the table positions are sized for a 62-bit golden intermediate).
#pragma once
#include "fixed.h"

namespace mtl_moe {

// Linear interpolation in tab[N] (entries of ENTRY, step 2^-STEP) at a non-negative position pos
// with POS_F fractional bits, relative to the table start. Result: codes with ENTRY::F + R
// fractional bits, R = max(0, POS_F - STEP) (the interpolation weight's bits).
template <class ENTRY, int N, int POS_F, int STEP>
struct interp {
    static const int R = POS_F - STEP > 0 ? POS_F - STEP : 0;
    // t0 2^R + (t1 - t0) fr with 0 <= fr < 2^(R+1) (a position clamped to the last interval is at
    // most one step beyond it): ENTRY::W + R + 4 bits, signed
    static const int RW = ENTRY::W + R + 4;
    typedef ap_int<RW> out_t;

    template <int PW>
    static out_t at(const typename ENTRY::raw* tab, const ap_uint<PW>& pos) {
        if (POS_F - STEP <= 0) {
            const ap_uint<PW + STEP + 1> i = ap_uint<PW + STEP + 1>(pos) << (STEP - POS_F);
            return out_t(tab[i < N - 1 ? int(i) : N - 1]);
        }
        const ap_uint<PW> idx_full = pos >> R;
        const int idx = idx_full > N - 2 ? N - 2 : int(idx_full);
        const ap_int<R + 2> fr = ap_int<PW + 2>(pos) - (ap_int<PW + 2>(idx) << R);
        const ap_int<ENTRY::W + 1> t0 = tab[idx], t1 = tab[idx + 1];
        const ap_int<ENTRY::W + 2> dt = t1 - t0;
        out_t y = out_t(t0) << R;
        y += mul(dt, fr);
        return y;
    }
};

// GELU(x) = ReLU(x) - delta(|x|), delta tabulated on [0, x_max].
template <class X, class OUT, class ENTRY, int STEP, int N>
static inline typename OUT::raw gelu(const typename X::raw& x, const typename ENTRY::raw* tab) {
    typedef interp<ENTRY, N, X::F, STEP> I;
    const int SH = X::F - STEP, SL = SH > 0 ? SH : 0, SR = SH < 0 ? -SH : 0;
    typedef ap_uint<X::W + 13> P;  // tables have fewer than 2^12 entries
    const P LAST = SH >= 0 ? P(P(N - 1) << SL) : P((P(N - 1) + ((P(1) << SR) - 1)) >> SR);  // ceil((N-1) 2^SH)
    const P a = x < 0 ? P(-ap_int<X::W + 1>(x)) : P(x);
    const bool beyond = a >= LAST;
    const P pos = beyond ? LAST : a;
    typename I::out_t d = I::at(tab, pos);
    if (beyond) d = 0;
    const int FRAC = ENTRY::F + I::R;
    const int COMMON = FRAC > X::F ? FRAC : X::F;
    const int YW = cmax<X::W + COMMON - X::F, I::RW + COMMON - FRAC>::v + 1;
    const ap_int<YW> relu = x > 0 ? ap_int<YW>(x) : ap_int<YW>(0);
    const ap_int<YW> y = (relu << (COMMON - X::F)) - (ap_int<YW>(d) << (COMMON - FRAC));
    return requant<OUT, COMMON>(y);
}

// e^x for x <= 0 (x: codes of X, one bit wider, a difference of two X codes): 2^-u with
// u = -x log2(e); 2^-frac(u) from the table, then a shift by floor(u).
template <class X, class OUT, class ENTRY, class L2E, int STEP, int N>
static inline typename OUT::raw exp_neg(const ap_int<X::W + 1>& x, const typename ENTRY::raw* tab,
                                        const typename L2E::raw& log2e) {
    const int UF = X::F + L2E::F;
    const int UW = X::W + L2E::W;
    typedef interp<ENTRY, N, UF, STEP> I;
    const ap_uint<X::W> nx = ap_uint<X::W>(-x);  // -x in [0, 2^W - 1]
    const ap_uint<UW> u = mul(nx, log2e);
    const ap_uint<UW> n = u >> UF;
    const ap_uint<UF> f = u;  // the low UF bits: frac(u)
    const typename I::out_t v = I::at(tab, f);
    const int VF = ENTRY::F + I::R;
    if (n >= OUT::F + 2) return fit<OUT>(ap_int<2>(0));  // below half an output LSB: 0 in every mode
    // shift VF + n - OUT::F, n in [0, OUT::F + 1]: a constant left part, a runtime right part
    const int C = VF - OUT::F;
    const int LEFT = C < 0 ? -C : 0;
    const ap_int<I::RW + LEFT> vl = ap_int<I::RW + LEFT>(v) << LEFT;
    return fit<OUT>(shift_round_rt<OUT::Q, C + LEFT + OUT::F + 1>(vl, C + LEFT + int(n)));
}

// 1/v for v > 0: v = m 2^e, m in [1, 2); 1/m from the table, then a shift by e.
template <class V, class OUT, class ENTRY, int STEP, int N>
static inline typename OUT::raw reciprocal(const typename V::raw& v, const typename ENTRY::raw* tab) {
    const int K = 62 - 2 * ENTRY::W;  // fractional bits of the normalised mantissa
    const int MW = cmax<V::W, K + 1>::v;
    typedef interp<ENTRY, N, K, STEP> I;
    const int e = leading_one(v);
    const ap_uint<MW> vm = v;
    const ap_uint<K + 1> m = e <= K ? ap_uint<K + 1>(vm << (K - e)) : ap_uint<K + 1>(vm >> (e - K));
    const ap_uint<K> pos = m;  // m - 2^K: drop the leading one
    const typename I::out_t t = I::at(tab, pos);
    // shift ENTRY::F + R + (e - V::F) - OUT::F, e in [0, V::W - 1]
    const int C = ENTRY::F + I::R - V::F - OUT::F;
    const int LEFT = C < 0 ? -C : 0;
    const ap_int<I::RW + LEFT> tl = ap_int<I::RW + LEFT>(t) << LEFT;
    return fit<OUT>(shift_round_rt<OUT::Q, C + LEFT + V::W>(tl, C + LEFT + e));
}

// 1/sqrt(v) for v > 0: v = m 2^e with e even, m in [1, 4); 1/sqrt(m) from the table, shift e/2.
template <class V, class OUT, class ENTRY, int STEP, int N>
static inline typename OUT::raw rsqrt(const typename V::raw& v, const typename ENTRY::raw* tab) {
    const int K = 62 - 2 * ENTRY::W - 2;
    const int MW = cmax<V::W, K + 2>::v + 1;
    typedef interp<ENTRY, N, K, STEP> I;
    int e = leading_one(v) - V::F;
    e -= (e & 1);  // floor to even (two's complement: also for e < 0)
    const int sh = e + V::F - K;
    const ap_uint<MW> vm = v;
    const ap_uint<K + 2> m = sh >= 0 ? ap_uint<K + 2>(vm >> sh) : ap_uint<K + 2>(vm << -sh);
    const ap_uint<K + 2> pos = m - (ap_uint<K + 2>(1) << K);
    const typename I::out_t t = I::at(tab, pos);
    // shift ENTRY::F + R + e/2 - OUT::F, e/2 in [(-V::F - 1) / 2, (V::W - V::F) / 2]
    const int EMIN = (-V::F - 2) / 2;
    const int C = ENTRY::F + I::R - OUT::F;
    const int LEFT = C + EMIN < 0 ? -(C + EMIN) : 0;
    const ap_int<I::RW + LEFT> tl = ap_int<I::RW + LEFT>(t) << LEFT;
    return fit<OUT>(shift_round_rt<OUT::Q, C + LEFT + V::W>(tl, C + LEFT + e / 2));
}

}  // namespace mtl_moe

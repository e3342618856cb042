// Fixed-point helpers on integer codes at their types' own widths: the C++ twin of mtl_moe/fixed.py.
//
// A value of type ap_fixed<W,I> is held as its integer code c (value c * 2^-F, F = W - I) in an
// ap_int<W> (ap_uint<W> when unsigned): fx<...>::raw. Every change of type is shift_round() with the
// target type's rounding mode followed by fit() with its overflow mode, the recipe of
// mtl_moe/ARITHMETIC.md. Shifts are compile-time template arguments wherever the spec fixes them;
// each helper returns exactly the width its result needs (shift_round_w / cmax below).
#pragma once
#include <ap_int.h>

namespace mtl_moe {

enum Rounding { TRN = 0, TRN_ZERO = 1, RND = 2, RND_CONV = 3 };
enum Overflow { WRAP = 0, SAT = 1 };

template <int A, int B>
struct cmax { static const int v = A > B ? A : B; };
template <int N>
struct clog2 { static const int v = 1 + clog2<(N + 1) / 2>::v; };  // ceil(log2(N))
template <>
struct clog2<1> { static const int v = 0; };
template <>
struct clog2<0> { static const int v = 0; };

template <bool S, int W>
struct int_of { typedef ap_int<W> t; };
template <int W>
struct int_of<false, W> { typedef ap_uint<W> t; };

// A fixed-point type as compile-time parameters (generated into config.h from the hardware spec).
template <int W_, int I_, bool SIGNED_, int Q_, int O_>
struct fx {
    static const int W = W_, I = I_, F = W_ - I_, Q = Q_, O = O_;
    static const bool SIGNED = SIGNED_;
    typedef typename int_of<SIGNED_, W_>::t raw;  // the code, exactly W bits
};

// C-simulation shortcuts: a few hot loops (the MAC array, AXI word fields) have a second body for
// g++ that computes the identical integers with 64-bit host arithmetic (exact: every value it holds
// provably fits). Synthesis never sees them; -DMTL_MOE_NO_FAST_CSIM compiles the synthesised bodies
// instead, and tests/test_hls.py checks that build bit for bit as well.
#if !defined(__SYNTHESIS__) && !defined(MTL_MOE_NO_FAST_CSIM)
#define MTL_MOE_FAST_CSIM 1
#endif

#ifndef __SYNTHESIS__
// C-simulation only: overflows of WRAP types seen by this process (the golden model raises on them;
// hardware would silently wrap). csim_run reports the count so a test can assert it is zero.
extern unsigned g_wrap_overflows;
#define MTL_MOE_COUNT_WRAP() (g_wrap_overflows++)
#else
#define MTL_MOE_COUNT_WRAP() ((void)0)
#endif

// a * b at the product's exact type (ap_int's own result type: W1 + W2 bits). C-simulation computes
// it in 64-bit integer arithmetic when the product provably fits (the same value: ap_int's C model
// otherwise multiplies at twice the width, slowly); synthesis sees the plain ap_int product.
template <int W1, bool S1, int W2, bool S2>
static inline typename ap_int_base<W1, S1>::template RType<W2, S2>::mult mul(const ap_int_base<W1, S1>& a,
                                                                           const ap_int_base<W2, S2>& b) {
    typedef typename ap_int_base<W1, S1>::template RType<W2, S2>::mult R;
#ifndef __SYNTHESIS__
    if (W1 + W2 <= ((S1 || S2) ? 64 : 63)) return R(a.to_int64() * b.to_int64());
#endif
    return a * b;
}

// Width of c / 2^S (S > 0, rounded) or c * 2^-S (S <= 0) for a W-bit code: signed, exact.
template <int W, int S>
struct shift_round_w { static const int v = S > 0 ? cmax<W - S + 2, 2>::v : W - S + 1; };

template <bool RIGHT>
struct shift_round_impl;
template <>
struct shift_round_impl<false> {  // S <= 0: an exact left shift
    template <int S, int Q, int W, bool SG>
    static ap_int<shift_round_w<W, S>::v> run(const ap_int_base<W, SG>& c) {
        ap_int<shift_round_w<W, S>::v> r = c;
        return r << (-S);
    }
};
template <>
struct shift_round_impl<true> {  // S > 0: floor, then the rounding increment
    template <int S, int Q, int W, bool SG>
    static ap_int<shift_round_w<W, S>::v> run(const ap_int_base<W, SG>& c) {
        const int CW = cmax<W + 1, S + 2>::v;
        const ap_int<CW> cs = c;
        const ap_int<CW> q = cs >> S;  // arithmetic shift: floor
        const bool half = cs[S - 1];
        const bool rest = (cs & ((ap_int<CW>(1) << (S - 1)) - 1)) != 0;
        bool inc = false;
        if (Q == RND) inc = half;
        if (Q == RND_CONV) inc = half && (rest || q[0]);
        if (Q == TRN_ZERO) inc = cs < 0 && (half || rest);
        return ap_int<shift_round_w<W, S>::v>(q + (inc ? 1 : 0));
    }
};

// Divide a code by 2^S with rounding mode Q (S <= 0 multiplies exactly); S is a constant.
template <int S, int Q, int W, bool SG>
static inline ap_int<shift_round_w<W, S>::v> shift_round(const ap_int_base<W, SG>& c) {
    return shift_round_impl<(S > 0)>::template run<S, Q, W, SG>(c);
}

// Divide by 2^sh, 0 <= sh <= SMAX a runtime amount (a barrel shifter), with rounding mode Q.
template <int Q, int SMAX, int W, bool SG>
static inline ap_int<W + 1> shift_round_rt(const ap_int_base<W, SG>& c, int sh) {
    const int CW = cmax<W + 1, SMAX + 2>::v;
    const ap_int<CW> cs = c;
    if (sh <= 0) return ap_int<W + 1>(cs);
    const ap_int<CW> q = cs >> sh;
    const ap_int<CW> rem = cs - (q << sh);  // in [0, 2^sh)
    const ap_int<CW> half = ap_int<CW>(1) << (sh - 1);
    bool inc = false;
    if (Q == RND) inc = rem >= half;
    if (Q == RND_CONV) inc = rem > half || (rem == half && q[0]);
    if (Q == TRN_ZERO) inc = cs < 0 && rem != 0;
    return ap_int<W + 1>(q + (inc ? 1 : 0));
}

// Range check into type T: SAT clamps; WRAP keeps the low W bits as hardware does (C-sim counts).
template <class T, int W, bool SG>
static inline typename T::raw fit(const ap_int_base<W, SG>& c) {
    typedef ap_int<cmax<W, T::W>::v + 2> C;
    const C v = c;
    const C lo = T::SIGNED ? C(-(C(1) << (T::W - 1))) : C(0);
    const C hi = T::SIGNED ? C((C(1) << (T::W - 1)) - 1) : C((C(1) << T::W) - 1);
    if (v < lo || v > hi) {
        if (T::O == SAT) return typename T::raw(v < lo ? lo : hi);
        MTL_MOE_COUNT_WRAP();
    }
    return typename T::raw(v);  // ap_int assignment keeps the low W bits: the wrap
}

// Codes with FROM_F fractional bits -> codes of type T (its rounding, then its overflow).
template <class T, int FROM_F, int W, bool SG>
static inline typename T::raw requant(const ap_int_base<W, SG>& c) {
    return fit<T>(shift_round<FROM_F - T::F, T::Q>(c));
}

// Floor division by a positive compile-time constant (C++ '/' truncates towards zero).
template <int D, int W, bool SG>
static inline ap_int<W> floor_div(const ap_int_base<W, SG>& a) {
    const ap_int<W> q = a / D;
    return (a % D != 0 && a < 0) ? ap_int<W>(q - 1) : q;
}

// floor(log2(v)) of v > 0: a fixed-bound priority encoder over the W bits (unrolled).
template <int W, bool SG>
static inline int leading_one(const ap_int_base<W, SG>& v) {
    int e = 0;
    for (int i = 0; i < W; i++) {
#pragma HLS UNROLL
        if (v[i]) e = i;
    }
    return e;
}

}  // namespace mtl_moe

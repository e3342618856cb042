// Fixed-point helpers on integer codes: the C++ twin of mtl_moe/fixed.py.
//
// A value of type ap_fixed<W,I> is held as its integer code c (value c * 2^-F, F = W - I). Feature
// maps are stored as ap_int<W> / ap_uint<W> codes of exactly their type's width; arithmetic widens
// to 64 bits, and every change of type is shift_round() with the target type's rounding mode
// followed by fit() with its overflow mode — the recipe of mtl_moe/ARITHMETIC.md.
#pragma once
#include <ap_int.h>

namespace mtl_moe {

typedef long long i64;

enum Rounding { TRN = 0, TRN_ZERO = 1, RND = 2, RND_CONV = 3 };
enum Overflow { WRAP = 0, SAT = 1 };

// A fixed-point type as compile-time parameters (generated into config.h from the hardware spec).
template <int W_, int I_, bool SIGNED_, int Q_, int O_>
struct fx {
    static const int W = W_, I = I_, F = W_ - I_, Q = Q_, O = O_;
    static const bool SIGNED = SIGNED_;
    static i64 min_code() { return SIGNED ? -(1LL << (W - 1)) : 0; }
    static i64 max_code() { return SIGNED ? (1LL << (W - 1)) - 1 : (1LL << W) - 1; }
};

// Overflows of WRAP types seen by this process (the golden model raises on them; hardware would
// silently wrap). The C-sim reports the count so a test can assert it is zero.
extern long long g_wrap_overflows;

// Divide by 2^shift with a rounding mode (shift <= 0 multiplies exactly).
static inline i64 shift_round(i64 c, int shift, int mode) {
    if (shift <= 0) return c * (1LL << -shift);
    i64 q = c >> shift;  // arithmetic shift: floor
    if (mode == TRN) return q;
    i64 rem = c & ((1LL << shift) - 1);
    i64 half = 1LL << (shift - 1);
    if (mode == RND) return q + (rem >= half ? 1 : 0);
    if (mode == RND_CONV) return q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
    return q + ((c < 0 && rem != 0) ? 1 : 0);  // TRN_ZERO
}

// Range check: SAT clamps; WRAP keeps the low W bits as hardware does, and counts the event.
template <class T>
static inline i64 fit(i64 c) {
    if (c >= T::min_code() && c <= T::max_code()) return c;
    if (T::O == SAT) return c < T::min_code() ? T::min_code() : T::max_code();
    g_wrap_overflows++;
    i64 m = (1LL << T::W) - 1;
    i64 low = c & m;
    if (T::SIGNED && (low >> (T::W - 1))) low -= (1LL << T::W);
    return low;
}

// Codes with from_frac fractional bits -> codes of type T (its rounding, then its overflow).
template <class T>
static inline i64 requant(i64 c, int from_frac) {
    return fit<T>(shift_round(c, from_frac - T::F, T::Q));
}

// c * 2^n for n >= 0 without shifting a negative number (undefined before C++20).
static inline i64 shl(i64 c, int n) { return c * (1LL << n); }

// Floor division by a positive integer (C++ '/' truncates towards zero).
static inline i64 floor_div(i64 a, i64 b) {
    i64 q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace mtl_moe

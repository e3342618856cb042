// A minimal stand-in for Vitis HLS's hls::vector (hls_vector.h is not available here): N values of
// type T that travel together as one word. An array of vec<T, N> is a memory of N*W-bit words, so a
// pipelined iteration that reads one element reads one word; a vec local to a pipelined loop is N
// registers (its indices are constants after unrolling).
#pragma once

namespace mtl_moe {

template <class T, int N>
struct vec {
    T v[N];
    T& operator[](int i) { return v[i]; }
    const T& operator[](int i) const { return v[i]; }
    static vec zero() {
        vec z;
        for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
            z.v[i] = 0;
        }
        return z;
    }
};

}  // namespace mtl_moe

// DPI-C side of mtl_moe_accel.sv: the exported top function (the same top.cpp the C-sim compiles,
// built with -I <export dir> -I <export dir>/include -I <hls4ml ap_types>) on the bytes the shell
// fetched over its AXI4 masters.
//
// accel_put stores one AXI beat read from DDR into the weights (0) or images (1) buffer,
// accel_compute runs mtl_moe_top on them, accel_get hands the shell one beat of the features (2).
#include <string.h>

#include <vector>

#include "svdpi.h"
#include "top.cpp"

static const int BEAT_BYTES = cfg::AXI_BITS / 8;
static std::vector<unsigned char> g_buf[3];

static unsigned char* beat_ptr(int buf_id, int beat) {
    std::vector<unsigned char>& b = g_buf[buf_id];
    size_t end = (size_t)(beat + 1) * BEAT_BYTES;
    if (b.size() < end) b.resize(end, 0);
    return b.data() + (size_t)beat * BEAT_BYTES;
}

extern "C" void accel_put(int buf_id, int beat, const svBitVecVal* data) {
    memcpy(beat_ptr(buf_id, beat), data, BEAT_BYTES);  // svBitVecVal: 32-bit words, LSB first
}

extern "C" void accel_get(int buf_id, int beat, svBitVecVal* data) {
    memcpy(data, beat_ptr(buf_id, beat), BEAT_BYTES);
}

extern "C" void accel_compute(int task, int n_images) {
    const long n_out = (long)cfg::N_EMBD * cfg::N_PATCHES;
    g_buf[2].assign((size_t)n_images * n_out * sizeof(act_raw) + BEAT_BYTES, 0);
    if (n_images == 0) return;
    beat_ptr(1, 0);  // an image buffer exists even if nothing was fetched
    mtl_moe_top(g_buf[0].data(), reinterpret_cast<const input_raw*>(g_buf[1].data()),
                reinterpret_cast<act_raw*>(g_buf[2].data()), task, n_images);
}

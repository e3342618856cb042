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
#include "mtl_moe/csim_io.h"

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
    using namespace mtl_moe::csim;
    g_buf[2].assign((size_t)n_images * FEATURE_BYTES + BEAT_BYTES, 0);
    if (n_images == 0) return;
    beat_ptr(0, (int)words_for(WEIGHT_BLOB_BYTES) - 1);  // whole buffers even if fewer beats were fetched
    beat_ptr(1, (int)words_for(IMAGE_BYTES * n_images) - 1);
    // the top's AXI-word ports on the fetched bytes (mtl_moe/csim_io.h packs them as the bus does);
    // the shell fetches the blob once through m_axi_gmem_w, so both weight pointers see that copy
    mtl_moe_top_bytes(g_buf[0].data(), g_buf[0].data(), g_buf[1].data(), g_buf[2].data(), task, n_images);
}

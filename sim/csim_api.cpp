// C-simulation entry points around an exported project's top function (compiled by mtl_moe.csim
// with -I <export dir> -I <export dir>/include -I <ap_types of the hls4ml wheel>).
//
// csim_run is the ctypes API: int64 codes in and out, packed into the AXI words the top function's
// ports take (mtl_moe/csim_io.h); csim_top_bytes runs the top on DDR-like byte buffers (the C-sim
// device of mtl_moe.deploy.backends). The export's own tb.cpp is the file-based testbench.
#include "top.cpp"
#include "mtl_moe/csim_io.h"

// weights, weights1: the two weight pointers of the top (the same buffer, as the driver programs them)
extern "C" int csim_top_bytes(const unsigned char* weights, const unsigned char* weights1,
                              const unsigned char* images,
                              unsigned char* features, int task, int n_images) {
    if (n_images < 1) return 1;
    mtl_moe_top_bytes(weights, weights1, images, features, task, n_images);
    return 0;
}

extern "C" int csim_run(const unsigned char* weights, const long long* images, int task, int n_images,
                        long long* features, long long* wrap_overflows) {
    using namespace mtl_moe::csim;
    const long n_in = (long)cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W;
    const long n_out = (long)cfg::N_EMBD * cfg::N_PATCHES;
    if (task < 0 || task >= cfg::N_TASKS || n_images < 1) return 1;
    std::vector<unsigned char> img(IMAGE_BYTES * n_images), feat(output_bytes(n_images));
    for (long i = 0; i < n_in * n_images; i++) memcpy(&img[i * cfg::IN_BYTES], &images[i], cfg::IN_BYTES);
    mtl_moe::g_wrap_overflows = 0;
    mtl_moe_top_bytes(weights, weights, img.data(), feat.data(), task, n_images);  // one blob, both ports
    // heads on the accelerator: image b's prediction (OUT_CH[task], H, W) at b * PRED_BYTES
    const long n_pred = (long)cfg::OUT_CH[task] * cfg::IMG_H * cfg::IMG_W;
    const long per = cfg::HEADS_ON_ACCEL ? n_pred : n_out;
    for (long i = 0; i < per * n_images; i++) {  // sign-extend each stored code
        long long v = 0;
        const long at = cfg::HEADS_ON_ACCEL ? (i / per) * PRED_BYTES + (i % per) * cfg::OUT_BYTES : i * cfg::OUT_BYTES;
        memcpy(&v, &feat[at], cfg::OUT_BYTES);
        const int sh = 64 - 8 * cfg::OUT_BYTES;
        features[i] = sh ? (long long)((unsigned long long)v << sh) >> sh : v;
    }
    *wrap_overflows = mtl_moe::g_wrap_overflows;
    return 0;
}

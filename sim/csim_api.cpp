// C-simulation entry points around an exported project's top function (compiled by mtl_moe.csim
// with -I <export dir> -I hls/include -I <ap_types of the hls4ml wheel>).
//
// csim_run is the ctypes API: int64 codes in and out, converted to the hardware's raw widths.
// (The export's own tb.cpp is the file-based testbench, also used for the sanitizer run.)
#include "top.cpp"

extern "C" int csim_run(const unsigned char* weights, const long long* images, int task, int n_images,
                        long long* features, long long* wrap_overflows) {
    const long n_in = (long)cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W;
    const long n_out = (long)cfg::N_EMBD * cfg::N_PATCHES;
    if (task < 0 || task >= cfg::N_TASKS || n_images < 1) return 1;
    input_raw* img = new input_raw[n_in * n_images];
    act_raw* feat = new act_raw[n_out * n_images];
    for (long i = 0; i < n_in * n_images; i++) img[i] = images[i];
    mtl_moe::g_wrap_overflows = 0;
    mtl_moe_top(weights, img, feat, task, n_images);
    for (long i = 0; i < n_out * n_images; i++) features[i] = (long long)feat[i];
    *wrap_overflows = mtl_moe::g_wrap_overflows;
    delete[] img;
    delete[] feat;
    return 0;
}

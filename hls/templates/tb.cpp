// C testbench of an exported project (Vitis HLS csim / cosim): runs the test image through the top
// function and compares the features with the golden model's, value for value.
// Files (written by mtl-moe export): weights.bin, tb_input.i64, tb_expected.i64, tb.json (task).
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "mtl_moe/fixed.h"

using namespace mtl_moe;
typedef ap_int<cfg::input_t::W> input_raw;
typedef ap_int<cfg::act_t::W> act_raw;
extern "C" void mtl_moe_top(const unsigned char* weights, const input_raw* images, act_raw* features,
                            int task, int n_images);

static void* load(const char* path, long expect) {
    FILE* f = fopen(path, "rb");
    if (!f) { printf("cannot open %s\n", path); exit(2); }
    void* buf = malloc(expect);
    long n = (long)fread(buf, 1, expect, f);
    fclose(f);
    if (n != expect) { printf("%s: %ld bytes, expected %ld\n", path, n, expect); exit(2); }
    return buf;
}

int main() {
    const long n_in = (long)cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W;
    const long n_out = (long)cfg::N_EMBD * cfg::N_PATCHES;
    unsigned char* w = (unsigned char*)load("weights.bin", TB_WEIGHT_BYTES);
    long long* in = (long long*)load("tb_input.i64", n_in * 8);
    long long* want = (long long*)load("tb_expected.i64", n_out * 8);
    input_raw* img = new input_raw[n_in];
    act_raw* feat = new act_raw[n_out];
    for (long i = 0; i < n_in; i++) img[i] = in[i];
    mtl_moe_top(w, img, feat, TB_TASK, 1);
    long bad = 0;
    for (long i = 0; i < n_out; i++) bad += ((long long)feat[i] != want[i]);
    printf("mismatches: %ld of %ld\n", bad, n_out);
    delete[] img;
    delete[] feat;
    free(w);
    free(in);
    free(want);
    return bad == 0 ? 0 : 1;
}

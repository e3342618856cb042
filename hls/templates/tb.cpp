// C testbench of an exported project (Vitis HLS csim / cosim): runs the test image through the top
// function and compares the features with the golden model's, value for value (with the heads on the
// accelerator, HEADS_ON_ACCEL: the task's prediction with golden's GoldenModel.__call__).
// Files (written by mtl-moe export): weights.bin, tb_input.i64, tb_expected.i64 (int64 codes).
// The ports are AXI words (ap_uint<AXI_BITS>); mtl_moe/csim_io.h packs the bytes as DDR holds them.
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "mtl_moe/csim_io.h"

using namespace mtl_moe;

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
    using namespace mtl_moe::csim;
    const long n_in = (long)cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W;
    const long n_out = cfg::HEADS_ON_ACCEL ? (long)cfg::OUT_CH[TB_TASK] * cfg::IMG_H * cfg::IMG_W
                                           : (long)cfg::N_EMBD * cfg::N_PATCHES;
    unsigned char* w = (unsigned char*)load("weights.bin", TB_WEIGHT_BYTES);
    long long* in = (long long*)load("tb_input.i64", n_in * 8);
    long long* want = (long long*)load("tb_expected.i64", n_out * 8);
    std::vector<unsigned char> img(IMAGE_BYTES), featb(output_bytes(1));
    for (long i = 0; i < n_in; i++) memcpy(&img[i * cfg::IN_BYTES], &in[i], cfg::IN_BYTES);
    std::vector<word> wv = to_words(w, TB_WEIGHT_BYTES), iv = to_words(img.data(), IMAGE_BYTES);
    std::vector<word> fv(words_for(output_bytes(1)), word(0));
    // the top itself, as cosim needs; one weight buffer behind both weight pointers, as the host does
    mtl_moe_top(wv.data(), wv.data(), iv.data(), fv.data(), TB_TASK, 1);
    from_words(fv, featb.data(), output_bytes(1));
    long bad = 0;
    const int sh = 64 - 8 * cfg::OUT_BYTES;
    for (long i = 0; i < n_out; i++) {
        long long v = 0;
        memcpy(&v, &featb[i * cfg::OUT_BYTES], cfg::OUT_BYTES);
        if (sh) v = (long long)((unsigned long long)v << sh) >> sh;
        bad += (v != want[i]);
    }
    printf("mismatches: %ld of %ld\n", bad, n_out);
    free(w);
    free(in);
    free(want);
    return bad == 0 ? 0 : 1;
}

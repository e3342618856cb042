// C-simulation / testbench side only (never synthesised): the top function's AXI-word ports on
// plain byte buffers, as the driver and the RTL shell see DDR. A word holds AXI_BITS / 8 bytes,
// lowest address in the lowest bits (little-endian AXI), so the bytes in memory are exactly those
// of weights.bin and of the image/feature buffers (elements of regmap.storage_bytes each).
#pragma once
#ifndef __SYNTHESIS__
#include <string.h>

#include <vector>

#include "config.h"
#include "mtl_moe/fixed.h"

namespace mtl_moe {
namespace csim {

typedef ap_uint<cfg::AXI_BITS> word;
const int WORD_BYTES = cfg::AXI_BITS / 8;

static inline long words_for(long nbytes) { return (nbytes + WORD_BYTES - 1) / WORD_BYTES; }

// nbytes of src -> whole words (zero-padded); a word's 64-bit limbs are its bytes in order
static inline std::vector<word> to_words(const unsigned char* src, long nbytes) {
    std::vector<word> w(words_for(nbytes) > 0 ? words_for(nbytes) : 1, word(0));
    for (long i = 0; i < nbytes; i += 8) {
        unsigned long long u = 0;
        memcpy(&u, src + i, nbytes - i < 8 ? nbytes - i : 8);
        const int limb = (int)((i % WORD_BYTES) / 8);
        if (cfg::AXI_BITS > 64) w[i / WORD_BYTES].V.get_pVal()[limb] = u;
        else w[i / WORD_BYTES] = u;
    }
    return w;
}

// the first nbytes of words -> dst
static inline void from_words(const std::vector<word>& w, unsigned char* dst, long nbytes) {
    for (long i = 0; i < nbytes; i += 8) {
        const int limb = (int)((i % WORD_BYTES) / 8);
        const unsigned long long u = cfg::AXI_BITS > 64 ? w[i / WORD_BYTES].V.get_pVal()[limb]
                                                        : (unsigned long long)w[i / WORD_BYTES].to_uint64();
        memcpy(dst + i, &u, nbytes - i < 8 ? nbytes - i : 8);
    }
}

const long IMAGE_BYTES = (long)cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W * cfg::IN_BYTES;
const long FEATURE_BYTES = (long)cfg::N_EMBD * cfg::N_PATCHES * cfg::OUT_BYTES;
const long WEIGHT_BLOB_BYTES = (long)cfg::W_WORDS * WORD_BYTES;
const long PRED_BYTES = (long)cfg::PRED_WORDS * WORD_BYTES;  // one image's prediction (heads on the accelerator)

// bytes of the top's output buffer for n images: the features, or (HEADS_ON_ACCEL) the n
// predictions followed by the heads' two scratch maps
static inline long output_bytes(int n) {
    return cfg::HEADS_ON_ACCEL ? (n * (long)cfg::PRED_WORDS + 2L * cfg::SCRATCH_WORDS) * WORD_BYTES
                               : FEATURE_BYTES * n;
}

}  // namespace csim
}  // namespace mtl_moe

extern "C" void mtl_moe_top(const mtl_moe::csim::word* weights, const mtl_moe::csim::word* weights1,
                            const mtl_moe::csim::word* images, mtl_moe::csim::word* features, int task,
                            int n_images);

// The top function on byte buffers: weights and weights1 (weights.bin, as seen through gmem_w and
// gmem_w1; the host passes one buffer for both, and then one copy of its words serves both ports),
// images (n_images x IMAGE_BYTES), features (output_bytes(n_images), written).
static inline void mtl_moe_top_bytes(const unsigned char* weights, const unsigned char* weights1,
                                     const unsigned char* images, unsigned char* features, int task,
                                     int n_images) {
    using namespace mtl_moe::csim;
    const std::vector<word> w = to_words(weights, WEIGHT_BLOB_BYTES);
    const std::vector<word> w1 = weights1 == weights ? std::vector<word>() : to_words(weights1, WEIGHT_BLOB_BYTES);
    const std::vector<word> img = to_words(images, IMAGE_BYTES * n_images);
    std::vector<word> feat = to_words(features, output_bytes(n_images));
    mtl_moe_top(w.data(), weights1 == weights ? w.data() : w1.data(), img.data(), feat.data(), task, n_images);
    from_words(feat, features, output_bytes(n_images));
}
#endif

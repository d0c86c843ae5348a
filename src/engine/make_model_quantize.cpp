// Quantised test models through llama.cpp's public llama_model_quantize (see make_model.h).
#include <string>
#include <vector>

#include <fmt/format.h>
#include <llama.h>

#include "make_model_internal.h"
#include "routescope/common.h"
#include "routescope/make_model.h"

namespace rs {

std::vector<std::string> quantize_types() {
    return {"Q8_0", "Q4_K_M"};
}

void quantize_model(const std::string & in, const std::string & out, const std::string & type) {
    llama_ftype ftype;
    if (type == "Q8_0")
        ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    else if (type == "Q4_K_M")
        ftype = LLAMA_FTYPE_MOSTLY_Q4_K_M;
    else
        throw Error(fmt::format("make-model: unknown quantisation '{}' (use Q8_0 or Q4_K_M)", type));
    detail::init_backend_once();
    detail::QuietLlamaLog quiet;
    llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.nthread = 1;
    qp.ftype = ftype;
    // Tiny widths (64) are not multiples of the K-quant block (256): llama.cpp falls back to a
    // compatible type per tensor (q5_0/q8_0/...), as it does for real models with odd shapes.
    if (llama_model_quantize(in.c_str(), out.c_str(), &qp) != 0)
        throw Error(fmt::format(
            "make-model: llama.cpp could not quantise '{}' to {} (set RS_VERBOSE=1 for its log)", in, type));
}

}  // namespace rs

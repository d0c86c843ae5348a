// The router tap's name matching: weights and the scheduler's copies of offloaded weights.
#include "router_tap.h"
#include "routescope/common.h"
#include "routescope/model.h"

#include <gtest/gtest.h>

namespace {

TEST(RouterTap, WeightLayerFromNameAndSchedulerCopies) {
    EXPECT_EQ(rs::weight_layer("blk.3.ffn_gate_inp.weight", "ffn_gate_inp.weight"), 3);
    EXPECT_EQ(rs::weight_layer("blk.47.ffn_gate_inp.bias", "ffn_gate_inp.bias"), 47);
    // ggml-backend.cpp names split-input copies "<backend>#<tensor>#<copy>"
    EXPECT_EQ(rs::weight_layer("CUDA0#blk.12.ffn_gate_inp.weight#0", "ffn_gate_inp.weight"), 12);
    EXPECT_EQ(rs::weight_layer("RPC0[127.0.0.1:50052]#blk.0.ffn_gate_inp.weight#1", "ffn_gate_inp.weight"),
              0);
    // not the router: other suffixes, the shared-expert gate, malformed names
    EXPECT_EQ(rs::weight_layer("blk.3.ffn_gate_inp_shexp.weight", "ffn_gate_inp.weight"), -1);
    EXPECT_EQ(rs::weight_layer("blk.3.ffn_gate_inp.weight.extra", "ffn_gate_inp.weight"), -1);
    EXPECT_EQ(rs::weight_layer("blk.3.ffn_gate_inp", "ffn_gate_inp.weight"), -1);
    EXPECT_EQ(rs::weight_layer("CUDA0#blk.3.ffn_gate_inp.weight", "ffn_gate_inp.weight"),
              -1);  // no closing '#'
    EXPECT_EQ(rs::weight_layer("blk.-1.ffn_gate_inp.weight", "ffn_gate_inp.weight"), -1);
    EXPECT_EQ(rs::weight_layer("token_embd.weight", "ffn_gate_inp.weight"), -1);
    EXPECT_EQ(rs::weight_layer("", "ffn_gate_inp.weight"), -1);
}

}  // namespace

namespace {

// p (softmax over all E logits) is the model's gate only for plain softmax routers.
TEST(RoutingP, MeaningFollowsTheGating) {
    for (const char * g : {"softmax", "softmax+renorm"})
        EXPECT_EQ(rs::routing_p_meaning(g, false).rfind("gate:", 0), 0u) << g;
    for (const char * g : {"sigmoid", "sigmoid+renorm+bias", "softmax_topk", "sqrt_softplus+renorm+bias",
                           "softmax+renorm+bias", "softmax+renorm+groups", "softmax+sigmoid_selection+renorm",
                           "softmax|sigmoid", "unknown"})
        EXPECT_EQ(rs::routing_p_meaning(g, false).rfind("proxy:", 0), 0u) << g;
    EXPECT_EQ(rs::routing_p_meaning("softmax", true).rfind("proxy:", 0), 0u);  // hash-routed layers
}

}  // namespace

namespace {

// Recording is refused for architectures the conformance test does not cover.
TEST(VerifiedArch, OnlyConformanceTestedArchitecturesAreRecorded) {
    rs::ModelInfo mi;
    mi.path = "m.gguf";
    for (const char * a : {"qwen3moe", "gpt-oss", "deepseek4", "jamba", "grovemoe"}) {
        mi.arch = a;
        EXPECT_NO_THROW(rs::check_verified_arch(mi)) << a;
    }
    for (const char * a : {"gemma4", "nomic-bert-moe", "dflash", "qwen3moe2", ""}) {
        mi.arch = a;
        try {
            rs::check_verified_arch(mi);
            ADD_FAILURE() << a << " accepted";
        } catch (const rs::Error & e) {
            EXPECT_NE(std::string(e.what()).find("--allow-unverified-arch"), std::string::npos) << e.what();
        }
    }
}

}  // namespace

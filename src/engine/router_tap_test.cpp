// The router tap's name matching: weights and the scheduler's copies of offloaded weights.
#include "router_tap.h"
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

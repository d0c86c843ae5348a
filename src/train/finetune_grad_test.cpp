// The gradient the finetuner follows: for trainable expert slices (Qwen3Moe::expert_override), libtorch's
// autograd through the whole forward equals central finite differences of the loss, computed in double on a
// tiny model; the frozen tensors get no gradient at all, and an override equal to the frozen slice leaves
// the forward bit-identical.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "qwen3moe_torch.h"

namespace {

rs::Qwen3Moe tiny_double_model() {
    torch::manual_seed(11);
    rs::MoeModelConfig c;
    c.n_vocab = 40, c.n_layer = 3, c.n_embd = 16, c.n_head = 2, c.n_head_kv = 2, c.head_dim = 8;
    c.n_expert = 4, c.top_k = 2, c.n_ff_exp = 8, c.n_ctx = 16;
    rs::Qwen3Moe m = rs::Qwen3Moe::init(c);
    for (auto & [name, t] : m.w)
        t = (t.detach() * (name.find("norm") == std::string::npos ? 5.0 : 1.0)).to(torch::kFloat64);
    return m;
}

// mean next-token NLL of `tok` [B, T+1]
torch::Tensor loss_of(const rs::Qwen3Moe & m, const torch::Tensor & tok) {
    const auto inp = tok.narrow(1, 0, tok.size(1) - 1), tgt = tok.narrow(1, 1, tok.size(1) - 1);
    const auto logits = m.forward(inp).logits;
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(2)}), tgt.reshape({-1}));
}

TEST(FinetuneGradient, SelectedExpertsMatchFiniteDifferencesAndFrozenOnesHaveNone) {
    rs::Qwen3Moe m = tiny_double_model();
    const auto tok = torch::randint(0, m.cfg.n_vocab, {2, 9}, torch::kInt64);
    const double reference = loss_of(m, tok).item<double>();
    // slices in block 0 (its gradient flows through two later blocks) and block 2
    for (const auto & key : {std::pair{0, 1}, std::pair{2, 3}}) {
        std::array<torch::Tensor, 3> s;
        const char * names[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
        for (size_t k = 0; k < 3; ++k)
            s[k] = m.w.at("blk." + std::to_string(key.first) + "." + names[k])[key.second]
                       .clone()
                       .set_requires_grad(true);
        m.expert_override[key] = s;
    }
    EXPECT_EQ(loss_of(m, tok).item<double>(), reference);  // an untrained override changes nothing
    const auto loss = loss_of(m, tok);
    loss.backward();
    for (const auto & [name, t] : m.w) EXPECT_FALSE(t.grad().defined()) << name;
    int checked = 0, nonzero = 0;
    const double h = 1e-6;
    for (auto & [key, s] : m.expert_override)
        for (auto & p : s) {
            const auto g = p.grad();
            ASSERT_TRUE(g.defined());
            auto flat = p.view({-1});
            for (int64_t i = 0; i < flat.numel(); i += 7) {
                double fd;
                {
                    torch::NoGradGuard ng;
                    const double v = flat[i].item<double>();
                    flat[i].fill_(v + h);
                    const double up = loss_of(m, tok).item<double>();
                    flat[i].fill_(v - h);
                    const double down = loss_of(m, tok).item<double>();
                    flat[i].fill_(v);
                    fd = (up - down) / (2 * h);
                }
                const double an = g.view({-1})[i].item<double>();
                EXPECT_NEAR(an, fd, 1e-7 + 1e-5 * std::fabs(fd))
                    << "block " << key.first << " expert " << key.second;
                ++checked;
                nonzero += std::fabs(an) > 1e-9;
            }
        }
    EXPECT_GT(checked, 100);
    EXPECT_GT(nonzero, checked / 2);  // the check is not of zeros
}

}  // namespace

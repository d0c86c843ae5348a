// `routescope train` on FLoRes dev with a tiny configuration: the loss goes down, a fixed seed on one thread
// gives a bit-identical GGUF, a killed run resumed from its checkpoint gives the same file as an
// uninterrupted one, the export loads in llama.cpp and agrees with the libtorch forward, and bad input is
// refused with one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "routescope/engine.h"
#include "routescope/train.h"
#include "test_util.h"

namespace {

using namespace rs::test;

std::string flores_dev() {
    return "flores:" + data_dir() + "/flores200/dev";
}

// A tiny configuration; `over` replaces or adds options ({"--seed", "8"}, {"--resume", ""}).
std::string train_args(const fs::path & out, int steps,
                       const std::map<std::string, std::string> & over = {}) {
    std::map<std::string, std::string> o = {{"--corpus", flores_dev()},
                                            {"--langs", "eng_Latn,deu_Latn,zho_Hans,swh_Latn"},
                                            {"--vocab", "600"},
                                            {"--layers", "2"},
                                            {"--embd", "32"},
                                            {"--heads", "2"},
                                            {"--head-dim", "16"},
                                            {"--experts", "4"},
                                            {"--top-k", "2"},
                                            {"--expert-ff", "32"},
                                            {"--seq-len", "32"},
                                            {"--batch", "8"},
                                            {"--warmup", "5"},
                                            {"--lr", "5e-3"},
                                            {"--min-lr", "5e-4"},
                                            {"--val-lines", "20"},
                                            {"--eval-every", "10"},
                                            {"--checkpoint-every", "5"},
                                            {"--seed", "7"},
                                            {"--threads", "1"},
                                            {"--steps", std::to_string(steps)},
                                            {"--out", out.string()}};
    for (const auto & [k, v] : over) o[k] = v;
    std::string args = "train --no-progress";
    for (const auto & [k, v] : o) args += " " + k + (v.empty() ? "" : " " + v);
    return args;
}

// step,lr,loss,... → the loss column
std::vector<double> losses(const fs::path & log_csv) {
    std::ifstream f(log_csv);
    std::string line;
    std::getline(f, line);
    std::vector<double> out;
    while (std::getline(f, line)) {
        std::stringstream ss(line);
        std::string step, lr, loss;
        std::getline(ss, step, ',');
        std::getline(ss, lr, ',');
        std::getline(ss, loss, ',');
        out.push_back(std::stod(loss));
    }
    return out;
}

TEST(Train, LossDecreasesAndSeedIsBitReproducible) {
    const auto dir = temp_dir("train_repro");
    const auto a = run_cli(train_args(dir / "a.gguf", 40));
    ASSERT_EQ(a.exit_code, 0) << a.err;
    const auto b = run_cli(train_args(dir / "b.gguf", 40));
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_TRUE(slurp(dir / "a.gguf") == slurp(dir / "b.gguf"));  // same seed, one thread: the same bytes
    const auto l = losses(dir / "a.gguf.log.csv");
    ASSERT_EQ(l.size(), 40u);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += l[(size_t)i] / 5, last += l[l.size() - 1 - (size_t)i] / 5;
    EXPECT_LT(last, first - 0.5) << "loss " << first << " -> " << last;
    EXPECT_NE(a.out.find("validation loss"), std::string::npos) << a.out;
    // another seed trains another model
    const auto c = run_cli(train_args(dir / "c.gguf", 40, {{"--seed", "8"}}));
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_FALSE(slurp(dir / "a.gguf") == slurp(dir / "c.gguf"));

    // the export is a qwen3moe llama.cpp loads, whose routing the libtorch forward reproduces
    rs::EngineParams ep;
    ep.n_threads = 1;
    ep.tap = false;
    rs::Engine e((dir / "a.gguf").string(), ep);
    EXPECT_EQ(e.info().arch, "qwen3moe");
    EXPECT_EQ(e.info().n_expert, 4);
    const auto toks = e.tokenize("Der Hund läuft über die Straße, and the dog runs.", 64);
    const auto ref = rs::reference_forward((dir / "a.gguf").string(), toks);
    const std::vector<std::vector<int32_t>> one{toks};
    const auto logits = e.output_logits(one)[0];
    ASSERT_EQ(logits.size(), ref.logits.size());
    double diff = 0;
    for (size_t i = 0; i < logits.size(); ++i)
        diff = std::max(diff, (double)std::fabs(logits[i] - ref.logits[i]));
    EXPECT_LT(diff, 0.05);  // f16 weights and KV cache in llama.cpp
}

// The training log without its last column (seconds since start), which differs between runs.
static std::string log_without_seconds(const fs::path & path) {
    std::istringstream in(slurp(path));
    std::string line, out;
    while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
    return out;
}

// --stop-after 17 with checkpoints every 5 steps: the resumed run restarts at step 15 and ends with the same
// file, byte for byte, as the uninterrupted run (same batches, same AdamW state).
TEST(Train, ResumeEqualsUninterrupted) {
    const auto dir = temp_dir("train_resume");
    ASSERT_EQ(run_cli(train_args(dir / "full.gguf", 24)).exit_code, 0);
    const auto stopped = run_cli(train_args(dir / "part.gguf", 24, {{"--stop-after", "17"}}));
    ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
    EXPECT_NE(stopped.out.find("stopped after step 17"), std::string::npos) << stopped.out;
    EXPECT_FALSE(fs::exists(dir / "part.gguf"));
    const auto resumed = run_cli(train_args(dir / "part.gguf", 24, {{"--resume", ""}}));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_TRUE(slurp(dir / "full.gguf") == slurp(dir / "part.gguf"));
    // the log matches too, apart from its wall-clock column
    EXPECT_EQ(log_without_seconds(dir / "full.gguf.log.csv"), log_without_seconds(dir / "part.gguf.log.csv"));
    // other settings for the same checkpoints are refused
    expect_clean_error(run_cli(train_args(dir / "part.gguf", 24, {{"--resume", ""}, {"--lr", "1e-3"}})),
                       "other settings");
}

TEST(Train, BadInputGivesOneLineErrors) {
    const auto dir = temp_dir("train_bad");
    {
        std::ofstream f(dir / "small.tsv");
        f << "id\tlang\ttext\n";
        for (int i = 0; i < 30; ++i) f << "s" << i << "\teng_Latn\tA tiny line number " << i << ".\n";
    }
    const std::string m = (dir / "m.gguf").string();
    expect_clean_error(run_cli(train_args(m, 5,
                                          {{"--corpus", "tsv:" + (dir / "small.tsv").string()},
                                           {"--langs", "eng_Latn"},
                                           {"--val-lines", "5"},
                                           {"--vocab", "300"},
                                           {"--seq-len", "64"},
                                           {"--batch", "64"}})),
                       "corpus too small");
    expect_clean_error(run_cli(train_args(m, 5, {{"--arch", "olmoe"}})),
                       "cannot export architecture 'olmoe'");
    expect_clean_error(
        run_cli(train_args(
            m, 5, {{"--embd", "8192"}, {"--expert-ff", "65536"}, {"--experts", "64"}, {"--batch", "512"}})),
        "GiB available");
    expect_clean_error(run_cli(train_args(m, 5, {{"--head-dim", "15"}})), "must be even");
}

}  // namespace

// `routescope trace` end to end: the trace on disk, bad input → one-line errors, kill + --resume,
// and a shard read by an independent reader (Python + numpy, no routescope code).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "routescope/trace.h"
#include "test_util.h"

namespace {

using namespace rs::test;

std::string trace_args(const std::string & model, const std::string & out, const std::string & extra = "") {
    return "trace --model " + model + " --corpus " + flores_devtest() +
           " --langs eng_Latn,deu_Latn,swh_Latn" +
           " --limit 6 --shard-seqs 4 --threads 1 --no-progress --out " + out + " " + extra;
}

TEST(TraceCli, WritesACompleteTrace) {
    const auto dir = temp_dir("complete");
    const auto model = tiny_model("qwen3moe");
    const auto r = run_cli(trace_args(model, (dir / "t").string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto m = rs::read_manifest((dir / "t").string());
    EXPECT_EQ(m.arch, "qwen3moe");
    EXPECT_EQ(m.n_sequences, 18);
    EXPECT_EQ(m.langs, (std::vector<std::string>{"eng_Latn", "deu_Latn", "swh_Latn"}));
    EXPECT_EQ(rs::list_shards((dir / "t").string()), (std::vector<int64_t>{0, 1, 2, 3, 4}));
    int64_t seen = 0;
    for (int64_t k = 0; k < 5; ++k) {
        const auto s = rs::read_shard((dir / "t").string(), m, k);
        for (const auto & q : s.seqs) {
            EXPECT_EQ(q.index, seen++);
            EXPECT_EQ(q.group, q.index / 3);  // group-major: 3 languages per FLoRes line
            EXPECT_EQ(q.lang, q.index % 3);
        }
        for (int64_t t = 0; t < s.n_tok(); ++t)
            for (int l = 0; l < s.n_moe; ++l) {
                double sum = 0;
                for (float v : s.p(t, l)) sum += v;
                ASSERT_NEAR(sum, 1.0, 1e-3);  // f16 storage
                for (int16_t id : s.ids(t, l)) ASSERT_TRUE(id >= 0 && id < m.n_expert);
            }
    }
    EXPECT_EQ(seen, 18);
    const auto info = run_cli("trace-info " + (dir / "t").string());
    EXPECT_EQ(info.exit_code, 0);
    EXPECT_NE(info.out.find("18 of 18 sequences"), std::string::npos) << info.out;
}

TEST(TraceCli, BadInputGivesOneLineErrors) {
    const auto dir = temp_dir("bad");
    const auto model = tiny_model("olmoe");
    expect_clean_error(run_cli(trace_args((dir / "missing.gguf").string(), (dir / "o1").string())),
                       "not found");

    std::ofstream(dir / "corrupt.gguf") << "GGUF but not really a model file at all";
    expect_clean_error(run_cli(trace_args((dir / "corrupt.gguf").string(), (dir / "o2").string())), "GGUF");

    rs::MakeModelParams dp;
    dp.dense = true;
    rs::make_model(dp, (dir / "dense.gguf").string());
    expect_clean_error(run_cli(trace_args((dir / "dense.gguf").string(), (dir / "o3").string())),
                       "not a Mixture-of-Experts model");

    expect_clean_error(run_cli("trace --model " + model + " --corpus " + flores_devtest() +
                               " --langs eng_Latn,xxx_Zzzz --out " + (dir / "o4").string()),
                       "xxx_Zzzz");

    std::ofstream(dir / "empty.tsv") << "id\tlang\tdomain\ttext\n";
    expect_clean_error(run_cli("trace --model " + model + " --corpus tsv:" + (dir / "empty.tsv").string() +
                               " --out " + (dir / "o5").string()),
                       "empty");

    fs::create_directories(dir / "uneven");
    std::ofstream(dir / "uneven" / "eng_Latn.devtest") << "one\ntwo\nthree\n";
    std::ofstream(dir / "uneven" / "deu_Latn.devtest") << "eins\nzwei\n";
    expect_clean_error(run_cli("trace --model " + model + " --corpus flores:" + (dir / "uneven").string() +
                               " --out " + (dir / "o6").string()),
                       "deu_Latn");

    // an output directory holding another model's trace
    ASSERT_EQ(run_cli(trace_args(model, (dir / "o7").string())).exit_code, 0);
    expect_clean_error(run_cli(trace_args(tiny_model("phimoe"), (dir / "o7").string(), "--resume")),
                       "different model");
}

// Kill -9 a running trace after its first shard, resume, and compare with an uninterrupted run.
TEST(TraceCli, KillAndResumeEqualsUninterrupted) {
    const auto dir = temp_dir("resume");
    const auto model = tiny_model("olmoe", 4, 8, 2);
    const std::string args = "trace --model " + model + " --corpus " + flores_devtest() +
                             " --langs eng_Latn,fra_Latn --limit 40 --shard-seqs 8 --batch-seqs 8 --threads 1"
                             " --no-progress --out ";
    ASSERT_EQ(run_cli(args + (dir / "full").string()).exit_code, 0);

    const fs::path part = dir / "part";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // exec routescope itself (no shell) so SIGKILL hits the recording process
        std::vector<std::string> words;
        std::istringstream ss(args + part.string());
        for (std::string w; ss >> w;) words.push_back(w);
        std::vector<char *> argv = {const_cast<char *>("routescope")};
        for (auto & w : words) argv.push_back(w.data());
        argv.push_back(nullptr);
        freopen("/dev/null", "w", stderr);
        execv(routescope_bin().c_str(), argv.data());
        _exit(127);
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (!fs::exists(part / rs::shard_file_name(0)) &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    const auto shards_before = rs::list_shards(part.string());
    ASSERT_FALSE(shards_before.empty());
    ASSERT_LT(shards_before.size(), 10u) << "the run finished before it could be killed";

    ASSERT_EQ(run_cli(args + part.string()).exit_code, 1);  // without --resume: refused
    const auto r = run_cli(args + part.string() + " --resume");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (int64_t k = 0; k < 10; ++k) {
        const auto a = slurp(dir / "full" / rs::shard_file_name(k));
        const auto b = slurp(part / rs::shard_file_name(k));
        ASSERT_FALSE(a.empty());
        EXPECT_EQ(a, b) << "shard " << k << " differs after resume";
    }
}

// --chat-template records each sentence inside the template; --template-tokens drop keeps only the
// sentence's rows, which are exactly the rows of those tokens in the template-tokens-kept recording (same
// decode), and the template is part of what a resume must share.
TEST(TraceCli, ChatTemplateKeepsOrDropsTheTemplatesTokens) {
    const auto dir = temp_dir("chat");
    const auto model = tiny_model("qwen3moe");
    ASSERT_EQ(run_cli(trace_args(model, (dir / "plain").string(), "--dtype f32 --max-tokens 600")).exit_code,
              0);
    ASSERT_EQ(run_cli(trace_args(model, (dir / "keep").string(),
                                 "--dtype f32 --max-tokens 600 --chat-template chatml"))
                  .exit_code,
              0);
    const auto r =
        run_cli(trace_args(model, (dir / "drop").string(),
                           "--dtype f32 --max-tokens 600 --chat-template chatml --template-tokens drop"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto mp = rs::read_manifest((dir / "plain").string());
    const auto mk = rs::read_manifest((dir / "keep").string());
    const auto md = rs::read_manifest((dir / "drop").string());
    EXPECT_FALSE(mp.options.contains("chat_template"));
    EXPECT_EQ(mk.options["chat_template"]["prefix"], "<|im_start|>user\n");
    EXPECT_EQ(md.options["chat_template"]["template_tokens"], "drop");
    for (int64_t k = 0; k < 5; ++k) {
        const auto p = rs::read_shard((dir / "plain").string(), mp, k);
        const auto kept = rs::read_shard((dir / "keep").string(), mk, k);
        const auto dropped = rs::read_shard((dir / "drop").string(), md, k);
        ASSERT_EQ(kept.seqs.size(), dropped.seqs.size());
        for (size_t q = 0; q < kept.seqs.size(); ++q) {
            const auto & a = kept.seqs[q];
            const auto & b = dropped.seqs[q];
            // the plain recording has BOS + the sentence; the dropped one the sentence only
            EXPECT_EQ(b.n_tok, p.seqs[q].n_tok - 1);
            EXPECT_TRUE(std::equal(dropped.tokens.begin() + b.tok_begin,
                                   dropped.tokens.begin() + b.tok_begin + b.n_tok,
                                   p.tokens.begin() + p.seqs[q].tok_begin + 1));
            // find the sentence inside the kept rows: after BOS + "<|im_start|>user\n"
            const auto at = std::search(
                kept.tokens.begin() + a.tok_begin, kept.tokens.begin() + a.tok_begin + a.n_tok,
                dropped.tokens.begin() + b.tok_begin, dropped.tokens.begin() + b.tok_begin + b.n_tok);
            ASSERT_NE(at, kept.tokens.begin() + a.tok_begin + a.n_tok);
            const int64_t off = at - kept.tokens.begin();
            EXPECT_GT(off, a.tok_begin + 1);
            for (int64_t t = 0; t < b.n_tok; ++t)
                for (int l = 0; l < kept.n_moe; ++l) {
                    const auto pk = kept.p(off + t, l), pd = dropped.p(b.tok_begin + t, l);
                    ASSERT_TRUE(std::equal(pk.begin(), pk.end(), pd.begin()))
                        << "seq " << q << " token " << t;
                    const auto ik = kept.ids(off + t, l), id = dropped.ids(b.tok_begin + t, l);
                    ASSERT_TRUE(std::equal(ik.begin(), ik.end(), id.begin()));
                }
        }
    }
    expect_clean_error(
        run_cli(trace_args(model, (dir / "keep").string(), "--dtype f32 --max-tokens 600 --resume")),
        "another corpus, corpus content or options");
    expect_clean_error(run_cli(trace_args(model, (dir / "x").string(), "--template-tokens drop")),
                       "without a chat template");
    expect_clean_error(run_cli(trace_args(model, (dir / "y").string(), "--chat-template gguf")),
                       "carries no chat template");
}

// The safetensors shards are readable with numpy alone (tests/read_shard.py implements the spec).
TEST(TraceCli, ShardReadableWithoutRoutescope) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "python3-numpy missing";
    const auto dir = temp_dir("interop");
    const auto model = tiny_model("gpt-oss");
    ASSERT_EQ(run_cli(trace_args(model, (dir / "t").string(), "--logits")).exit_code, 0);
    const auto m = rs::read_manifest((dir / "t").string());
    const auto s = rs::read_shard((dir / "t").string(), m, 1);

    const std::string cmd = "/usr/bin/python3 " + std::string(RS_SOURCE_DIR) + "/tests/read_shard.py " +
                            (dir / "t" / rs::shard_file_name(1)).string();
    FILE * p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, k);
    ASSERT_EQ(pclose(p), 0) << out;
    const auto j = nlohmann::json::parse(out);

    ASSERT_EQ(j["probs_shape"].get<std::vector<int64_t>>(),
              (std::vector<int64_t>{s.n_tok(), s.n_moe, s.n_expert}));
    EXPECT_EQ(j["tokens"].get<std::vector<int32_t>>(), s.tokens);
    EXPECT_EQ(j["topk"].get<std::vector<int16_t>>(), s.topk);
    const auto probs = j["probs"].get<std::vector<float>>();
    ASSERT_EQ(probs.size(), s.probs.size());
    for (size_t i = 0; i < probs.size(); ++i) ASSERT_EQ(probs[i], s.probs[i]) << i;  // same f16 → f32
    const auto logits = j["logits"].get<std::vector<float>>();
    ASSERT_EQ(logits, s.logits);
    EXPECT_EQ(j["seq_offset"].get<std::vector<int64_t>>().back(), s.n_tok());
    EXPECT_EQ(j["metadata"]["format"], "routescope-trace");
    EXPECT_LT(j["max_abs_row_sum_error"].get<double>(), 1e-3);
}

}  // namespace

namespace {

// `steer validate` and `trace --steer`: a spec checked against the model, recorded under steering.
TEST(TraceCli, SteerValidateAndTraceUnderSteering) {
    const auto dir = rs::test::temp_dir("steer");
    const auto model = rs::test::tiny_model("qwen3moe");
    std::ofstream(dir / "ok.json") << R"({"rules": [{"layers": "1:2", "experts": [4], "method": "force"}]})";
    std::ofstream(dir / "bad.json")
        << R"({"rules": [{"layers": "1:2", "experts": [99], "method": "force"}]})";
    const auto ok = rs::test::run_cli("steer validate " + (dir / "ok.json").string() + " --model " + model);
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(ok.out.find("block   1: force"), std::string::npos) << ok.out;
    expect_clean_error(
        rs::test::run_cli("steer validate " + (dir / "bad.json").string() + " --model " + model),
        "expert 99 out of range");
    const auto r =
        rs::test::run_cli(trace_args(model, (dir / "t").string(), "--steer " + (dir / "ok.json").string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto m = rs::read_manifest((dir / "t").string());
    ASSERT_TRUE(m.options.contains("steer"));
    const auto s = rs::read_shard((dir / "t").string(), m, 0);
    for (int64_t t = 0; t < s.n_tok(); ++t)
        for (int l : {1, 2}) {
            const auto ids = s.ids(t, l);
            ASSERT_NE(std::find(ids.begin(), ids.end(), 4), ids.end()) << "token " << t << " slot " << l;
        }
}

// `trace --steer` with a soft rule against a plain `trace`, both with --logits: in the steered block the
// recorded pre-gating logits are exactly the unsteered ones plus λ·std(z) on the targeted experts (Eq. 4),
// and the blocks before it are untouched.
TEST(TraceCli, SoftSteeringShiftsRecordedLogitsByLambdaStd) {
    const auto dir = rs::test::temp_dir("steer_soft");
    const auto model = rs::test::tiny_model("olmoe");
    const double lambda = -0.8;
    std::ofstream(dir / "soft.json")
        << R"({"rules": [{"layers": 2, "experts": [1, 6], "method": "soft", "lambda": -0.8}]})";
    ASSERT_EQ(rs::test::run_cli(trace_args(model, (dir / "base").string(), "--logits")).exit_code, 0);
    const auto r = rs::test::run_cli(
        trace_args(model, (dir / "soft").string(), "--logits --steer " + (dir / "soft.json").string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto mb = rs::read_manifest((dir / "base").string()),
               ms = rs::read_manifest((dir / "soft").string());
    const int E = mb.n_expert;
    for (int64_t k = 0; k < 5; ++k) {
        const auto b = rs::read_shard((dir / "base").string(), mb, k),
                   s = rs::read_shard((dir / "soft").string(), ms, k);
        ASSERT_EQ(b.n_tok(), s.n_tok());
        for (int64_t t = 0; t < b.n_tok(); ++t) {
            for (int l : {0, 1})  // upstream of block 2: bit-identical
                ASSERT_EQ(0, std::memcmp(&b.logits[(size_t)((t * b.n_moe + l) * E)],
                                         &s.logits[(size_t)((t * s.n_moe + l) * E)], sizeof(float) * E));
            const float * z0 = &b.logits[(size_t)((t * b.n_moe + 2) * E)];
            const float * z1 = &s.logits[(size_t)((t * s.n_moe + 2) * E)];
            double mean = 0, var = 0;
            for (int e = 0; e < E; ++e) mean += z0[e] / E;
            for (int e = 0; e < E; ++e) var += (z0[e] - mean) * (z0[e] - mean) / E;
            for (int e = 0; e < E; ++e) {
                const double want = z0[e] + ((e == 1 || e == 6) ? lambda * std::sqrt(var) : 0.0);
                ASSERT_NEAR(z1[e], want, 1e-5 * (1 + std::fabs(want))) << "token " << t << " expert " << e;
            }
        }
    }
}

}  // namespace

namespace {

// Issue #11, item 4: `trace --batch` far beyond the machine's memory is refused at once, naming the option.
TEST(TraceCli, RunThatCannotFitInMemoryIsRefused) {
    const auto dir = rs::test::temp_dir("trace_mem");
    const auto r =
        rs::test::run_cli("trace --model " + rs::test::tiny_model("olmoe") + " --corpus " +
                          rs::test::flores_devtest() + " --langs eng_Latn --limit 2 --batch 1000000000 " +
                          "--max-tokens 64 --no-progress --out " + (dir / "t").string());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("GiB available"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--batch"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(rs::test::fs::exists(dir / "t" / "manifest.json"));
}

}  // namespace

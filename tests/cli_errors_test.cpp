// Issue #15 end to end through the routescope binary: bad options and inputs give one line
// `routescope: …` and exit 1 (never a raw library message), refused runs leave nothing that blocks
// their corrected rerun, and compare refuses runs that cannot be paired.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace {

using namespace rs::test;

void write(const fs::path & p, const std::string & s) {
    std::ofstream(p, std::ios::binary) << s;
}

}  // namespace

TEST(CliErrors, OptionValidation) {
    const auto dir = temp_dir("cli_opts");
    const std::string model = tiny_model("qwen3moe");
    const std::string out = " --out " + (dir / "o").string();
    // 9.: a negative --limit is not "no limit"
    expect_clean_error(run_cli("trace --model " + model + " --corpus " + flores_devtest() +
                               " --langs eng_Latn --limit -1 --threads 1" + out),
                       "--limit");
    expect_clean_error(run_cli("eval --model " + model + " --task mgsm --langs eng_Latn --limit -3" + out),
                       "--limit");
    // 4.: zero resamples used to abort
    expect_clean_error(run_cli("analyze " + dir.string() + " --bootstrap 0" + out), "--bootstrap");
    expect_clean_error(run_cli("compare " + dir.string() + " " + dir.string() + " --resamples 0"),
                       "--resamples");
    expect_clean_error(run_cli("analyze " + dir.string() + " --threads -2" + out), "--threads");
    EXPECT_FALSE(fs::exists(dir / "o"));
}

TEST(CliErrors, SteeringSpecsAreCheckedByKey) {
    const auto dir = temp_dir("cli_steer");
    const std::string model = tiny_model("qwen3moe");
    auto validate = [&](const std::string & body) {
        write(dir / "s.json", body);
        return run_cli("steer validate " + (dir / "s.json").string() + " --model " + model);
    };
    expect_clean_error(
        validate(R"({"rules": [{"layers": "all", "experts": [0], "method": "soft", "lambda": 1e300}]})"),
        "lambda");
    expect_clean_error(validate(R"({"rules": [{"layers": 1, "experts": [4294967299], "method": "force"}]})"),
                       "expert 4294967299 out of range");
    expect_clean_error(
        validate(R"({"rules": [{"layers": 1, "experts": [1], "method": "suppress", "margni": 1}]})"),
        "unknown key \"margni\"");
    expect_clean_error(
        validate(R"({"rules": [{"layers": 1, "experts": [1], "method": "force"}], "seed": -1})"), "seed");
    expect_clean_error(validate(R"({"rules": [{"layers": 1, "experts": [1e999], "method": "force"}]})"),
                       "s.json");
    expect_clean_error(validate(R"({"rules": [{"layers": 1, "set": 3, "method": "force"}]})"), "s.json");
}

// 12.: bad UTF-8 in a corpus id is named by FILE:LINE and leaves no directory that blocks a rerun.
TEST(CliErrors, BadUtf8CorpusLeavesNoTrace) {
    const auto dir = temp_dir("cli_utf8");
    write(dir / "c.tsv", "id\tlang\tdomain\ttext\na\xff\teng_Latn\tweb\tHello world.\n");
    const auto out = dir / "t";
    const std::string args = "trace --model " + tiny_model("qwen3moe") + " --threads 1 --no-progress --out " +
                             out.string() + " --corpus tsv:";
    expect_clean_error(run_cli(args + (dir / "c.tsv").string()), "c.tsv:2: the id is not valid UTF-8");
    EXPECT_FALSE(fs::exists(out / "manifest.json"));
    write(dir / "c.tsv", "id\tlang\tdomain\ttext\na\teng_Latn\tweb\tHello world.\n");
    const auto r = run_cli(args + (dir / "c.tsv").string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(out / "manifest.json"));
    EXPECT_TRUE(fs::exists(out / "shard-00000.safetensors"));
}

// 10.: eval.json is written only once the inputs are valid, so a corrected rerun is not refused.
TEST(CliErrors, EvalValidatesBeforeWritingEvalJson) {
    const auto dir = temp_dir("cli_eval");
    const std::string model = tiny_model("qwen3moe");
    const auto out = dir / "e";
    const std::string base = "eval --task mgsm --limit 1 --threads 1 --no-progress --out " + out.string();
    expect_clean_error(run_cli(base + " --model " + model + " --langs eng_Latn --max-new-tokens 0"),
                       "--max-new-tokens 0");
    expect_clean_error(run_cli(base + " --model " + model + " --langs eng_Latn,eng_Latn"), "twice");
    // a truncated model: its metadata reads, loading the weights fails
    const auto size = fs::file_size(model);
    fs::copy_file(model, dir / "cut.gguf");
    fs::resize_file(dir / "cut.gguf", size / 2);
    const auto cut = run_cli(base + " --model " + (dir / "cut.gguf").string() + " --langs eng_Latn");
    EXPECT_EQ(cut.exit_code, 1) << cut.err;
    EXPECT_FALSE(fs::exists(out / "eval.json"));
    const auto ok = run_cli(base + " --model " + model + " --langs eng_Latn --max-new-tokens 4");
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_TRUE(fs::exists(out / "eval.json"));
}

// 11.: compare needs two different runs of one model.
TEST(CliErrors, CompareRefusesUnpairableRuns) {
    const auto dir = temp_dir("cli_compare");
    for (const char * name : {"a", "b"}) {
        fs::create_directories(dir / name);
        write(dir / name / "results.csv",
              "task,lang,item_id,gold,pred,correct,steered\nmgsm,eng_Latn,1,3,3,1,0\nmgsm,eng_Latn,2,4,5,0,"
              "0\n");
    }
    write(dir / "a" / "eval.json", R"({"model": {"sha256": "aaaa"}, "steer": null, "tasks": {}})");
    write(dir / "b" / "eval.json", R"({"model": {"sha256": "bbbb"}, "steer": null, "tasks": {}})");
    expect_clean_error(run_cli("compare " + (dir / "a").string() + " " + (dir / "a").string()),
                       "both the base and the steered");
    expect_clean_error(run_cli("compare " + (dir / "a").string() + " " + (dir / "b").string()),
                       "another model");
    EXPECT_FALSE(fs::exists(dir / "b" / "compare.md"));
    write(dir / "b" / "eval.json", R"({"model": {"sha256": "aaaa"}, "steer": {"seed": 0}, "tasks": {}})");
    const auto r = run_cli("compare " + (dir / "a").string() + " " + (dir / "b").string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir / "b" / "compare.md"));
    EXPECT_TRUE(fs::exists(dir / "b" / "compare.csv"));
}

// 7.: --resume trusts only shards whose bytes match the checksum in the manifest (a truncated or empty
// shard is recorded again, to the same bytes), and refuses a corpus whose content changed.
TEST(CliErrors, ResumeVerifiesShardsAndCorpus) {
    const auto dir = temp_dir("cli_resume");
    write(dir / "c.tsv",
          "id\tlang\tdomain\ttext\na\teng_Latn\tweb\tHello world.\nb\teng_Latn\tweb\tA second line.\n"
          "c\teng_Latn\tweb\tThe third one.\n");
    const auto out = dir / "t";
    const std::string args = "trace --model " + tiny_model("qwen3moe") +
                             " --threads 1 --no-progress --shard-seqs 1 --out " + out.string() +
                             " --corpus tsv:";
    ASSERT_EQ(run_cli(args + (dir / "c.tsv").string()).exit_code, 0);
    const std::string shard0 = slurp(out / "shard-00000.safetensors"),
                      shard1 = slurp(out / "shard-00001.safetensors");
    std::ofstream(out / "shard-00000.safetensors", std::ios::trunc).close();  // empty
    fs::resize_file(out / "shard-00001.safetensors", shard1.size() / 2);      // truncated
    const auto r = run_cli(args + (dir / "c.tsv").string() + " --resume");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(slurp(out / "shard-00000.safetensors"), shard0);
    EXPECT_EQ(slurp(out / "shard-00001.safetensors"), shard1);
    const auto info = run_cli("analyze " + out.string() + " --out " + (dir / "a").string());
    EXPECT_EQ(info.exit_code, 0) << info.err;
    // same row count, other text
    write(dir / "c.tsv",
          "id\tlang\tdomain\ttext\na\teng_Latn\tweb\tHello world!\nb\teng_Latn\tweb\tA second line.\n"
          "c\teng_Latn\tweb\tThe third one.\n");
    expect_clean_error(run_cli(args + (dir / "c.tsv").string() + " --resume"), "corpus content");
}

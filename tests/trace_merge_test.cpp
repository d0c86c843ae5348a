// `trace --part I/N` + `trace merge` end to end (issue #11, item 5): two parts recorded separately and
// merged are the single-machine trace byte for byte (shards and manifest), so `analyze` and `experts` on
// the merged trace write the same files; parts that do not belong together, a missing or repeated part,
// an unfinished part, and a split that would cut a parallel group are one-line errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "routescope/trace.h"
#include "test_util.h"

namespace {

using namespace rs::test;

// 4 languages × 20 groups = 80 sequences in 5 shards of 16 (a multiple of 4: no group spans two shards).
std::string trace_args(const std::string & model, const std::string & extra = "", int shard_seqs = 16) {
    return "trace --model " + model + " --corpus " + flores_devtest() +
           " --langs eng_Latn,deu_Latn,fra_Latn,swh_Latn --limit 20 --shard-seqs " +
           std::to_string(shard_seqs) + " --threads 1 --no-progress " + extra + " --out ";
}

// Every regular file under `dir`, by name, with its bytes.
std::map<std::string, std::string> files_of(const fs::path & dir) {
    std::map<std::string, std::string> out;
    for (const auto & e : fs::directory_iterator(dir))
        if (e.is_regular_file()) out[e.path().filename().string()] = slurp(e.path());
    return out;
}

// `s` with every occurrence of `path` removed.
std::string without(const std::string & s, const std::string & path) {
    std::string out;
    size_t b = 0;
    for (size_t at; (at = s.find(path, b)) != std::string::npos; b = at + path.size())
        out.append(s, b, at - b);
    out.append(s, b, std::string::npos);
    return out;
}

TEST(TraceMerge, TwoPartsMergedEqualTheSingleMachineTrace) {
    const auto dir = temp_dir("merge");
    const auto model = tiny_model("olmoe");
    const auto whole = dir / "whole", p1 = dir / "p1", p2 = dir / "p2", merged = dir / "merged";
    for (const auto & [out, part] :
         {std::pair{whole, std::string()}, {p1, "--part 1/2"}, {p2, "--part 2/2"}}) {
        const auto r = run_cli(trace_args(model, part) + out.string());
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    // the parts hold disjoint shards: [0, 2) and [2, 5)
    EXPECT_EQ(rs::list_shards(p1.string()), (std::vector<int64_t>{0, 1}));
    EXPECT_EQ(rs::list_shards(p2.string()), (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(rs::manifest_part(rs::read_manifest(p2.string())).index, 2);

    // a part alone is not a trace to analyse; resuming it keeps its part
    EXPECT_EQ(run_cli(trace_args(model, "--part 1/2 --resume") + p1.string()).exit_code, 0);
    EXPECT_EQ(run_cli(trace_args(model, "--part 2/2 --resume") + p1.string()).exit_code, 1);

    const auto r = run_cli("trace merge " + p2.string() + " " + p1.string() + " --out " + merged.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto a = files_of(whole), b = files_of(merged);
    ASSERT_EQ(a.size(), b.size());
    for (const auto & [name, bytes] : a) {
        ASSERT_TRUE(b.count(name)) << name;
        EXPECT_EQ(bytes, b.at(name)) << name << " differs between the merged and the single-machine trace";
    }

    // analyze and experts: the same files from either trace
    for (const auto & [t, o] : {std::pair{whole, dir / "an_whole"}, {merged, dir / "an_merged"}}) {
        ASSERT_EQ(run_cli("analyze " + t.string() + " --pivot eng_Latn --threads 1 --bootstrap 100 --out " +
                          o.string())
                      .exit_code,
                  0);
        ASSERT_EQ(run_cli("experts " + t.string() +
                          " --target lang=deu_Latn --baseline lang=eng_Latn --tau 0.05 --threads 1 --out " +
                          (o / "experts.json").string())
                      .exit_code,
                  0);
    }
    const auto x = files_of(dir / "an_whole"), y = files_of(dir / "an_merged");
    ASSERT_GT(x.size(), 3u);
    ASSERT_EQ(x.size(), y.size());
    for (const auto & [name, bytes] : x) {
        ASSERT_TRUE(y.count(name)) << name;
        // tables may name the trace directory they were computed from
        EXPECT_EQ(without(bytes, whole.string()), without(y.at(name), merged.string())) << name;
    }
}

TEST(TraceMerge, RefusesPartsThatDoNotBelongTogether) {
    const auto dir = temp_dir("merge_bad");
    const auto model = tiny_model("olmoe");
    auto trace = [&](const std::string & out, const std::string & extra) {
        const auto r = run_cli(trace_args(model, extra) + (dir / out).string());
        EXPECT_EQ(r.exit_code, 0) << out << ": " << r.err;
    };
    trace("p1", "--part 1/2");
    trace("p2", "--part 2/2");
    trace("p2_f32", "--part 2/2 --dtype f32");
    trace("q2", "--part 2/3");
    auto merge = [&](const std::string & parts, const std::string & out) {
        std::string args = "trace merge";
        std::istringstream ss(parts);
        for (std::string w; ss >> w;) {
            args += ' ';
            args += (dir / w).string();
        }
        return run_cli(args + " --out " + (dir / out).string());
    };
    const std::map<std::string, std::string> cases = {
        {"p1", "part 2/2 is missing"},
        {"p1 p1", "is also"},
        {"p1 p2_f32", "other options"},
        {"p1 q2", "another split"},
    };
    int n = 0;
    for (const auto & [parts, want] : cases) {
        const auto r = merge(parts, "out" + std::to_string(n++));
        EXPECT_EQ(r.exit_code, 1) << parts;
        EXPECT_NE(r.err.find(want), std::string::npos) << parts << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
    // an unfinished part: a shard of its range is gone
    fs::copy(dir / "p2", dir / "p2_cut", fs::copy_options::recursive);
    fs::remove(dir / "p2_cut" / rs::shard_file_name(3));
    auto r = merge("p1 p2_cut", "out_cut");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("shard 3 of this part is not recorded"), std::string::npos) << r.err;
    // a corrupted shard
    fs::copy(dir / "p2", dir / "p2_bad", fs::copy_options::recursive);
    { std::ofstream(dir / "p2_bad" / rs::shard_file_name(4), std::ios::app) << "x"; }
    r = merge("p1 p2_bad", "out_bad");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("checksum does not match"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "out_bad" / "manifest.json"));
    // an existing trace as --out
    r = merge("p1 p2", "p1");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("already holds a trace"), std::string::npos) << r.err;

    // --part syntax, more parts than shards, a boundary inside a parallel group (15 is not a multiple of 4)
    for (const auto & [extra, want] :
         std::vector<std::pair<std::string, std::string>>{{"--part 3/2", "expected I/N"},
                                                          {"--part x", "expected I/N"},
                                                          {"--part 1/9", "only 5 shards"},
                                                          {"--part 1/2", "split parallel group"}}) {
        const int shard_seqs = want == "split parallel group" ? 15 : 16;
        r = run_cli(trace_args(model, extra, shard_seqs) + (dir / "bad_part").string());
        EXPECT_EQ(r.exit_code, 1) << extra;
        EXPECT_NE(r.err.find(want), std::string::npos) << extra << ": " << r.err;
    }
}

}  // namespace

// eval_results.h: results.csv append / reopen / resume (done-set), an interrupted (unterminated) last line
// is ignored by the reader and cut off by the writer, quoting round-trips, malformed files are errors with
// FILE:LINE, and summary.csv accuracy with a deterministic bootstrap CI.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "routescope/common.h"
#include "routescope/eval_results.h"

namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
class ResultsFile : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto * info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("rs_eval_results_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        path_ = (dir_ / "results.csv").string();
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string slurp() const {
        std::ifstream in(path_, std::ios::binary);
        std::ostringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    void write_raw(const std::string & text) const {
        std::ofstream out(path_, std::ios::binary | std::ios::trunc);
        out << text;
    }

    fs::path dir_;
    std::string path_;
};

rs::ResultRow row(const std::string & id, bool correct, bool steered = false) {
    return {"mgsm", "deu_Latn", id, "18", correct ? "18" : "17", correct, steered};
}

TEST_F(ResultsFile, WriteThreeReopenResume) {
    {
        rs::ResultsWriter w(path_);
        w.append(row("mgsm/deu_Latn/2", true));
        w.append(row("mgsm/deu_Latn/3", false));
        w.append(row("mgsm/deu_Latn/4", true));
    }
    EXPECT_EQ(slurp(),
              "task,lang,item_id,gold,pred,correct,steered\n"
              "mgsm,deu_Latn,mgsm/deu_Latn/2,18,18,1,0\n"
              "mgsm,deu_Latn,mgsm/deu_Latn/3,18,17,0,0\n"
              "mgsm,deu_Latn,mgsm/deu_Latn/4,18,18,1,0\n");
    const auto rows = rs::read_results(path_);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[1].item_id, "mgsm/deu_Latn/3");
    EXPECT_EQ(rows[1].pred, "17");
    EXPECT_FALSE(rows[1].correct);
    const auto done = rs::done_item_ids(rows, "mgsm", "deu_Latn", false);
    EXPECT_EQ(done.size(), 3u);
    EXPECT_TRUE(done.count("mgsm/deu_Latn/4"));
    // Other task / language / condition: nothing done yet.
    EXPECT_TRUE(rs::done_item_ids(rows, "mgsm", "fra_Latn", false).empty());
    EXPECT_TRUE(rs::done_item_ids(rows, "mgsm", "deu_Latn", true).empty());

    // Reopen and continue: the header is not repeated.
    {
        rs::ResultsWriter w(path_);
        w.append(row("mgsm/deu_Latn/5", true));
    }
    EXPECT_EQ(rs::read_results(path_).size(), 4u);
    const std::string text = slurp();
    EXPECT_EQ(text.find("task,", 1), std::string::npos);
}

TEST_F(ResultsFile, TruncatedLastLineIsIgnoredAndCutOnAppend) {
    write_raw(
        "task,lang,item_id,gold,pred,correct,steered\n"
        "mgsm,deu_Latn,a,1,1,1,0\n"
        "mgsm,deu_Latn,b,2,3,0,0\n"
        "mgsm,deu_Latn,c,3,3,1,0\n"
        "mgsm,deu_Latn,d,4,");  // the process died mid-write
    const auto rows = rs::read_results(path_);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rs::done_item_ids(rows, "mgsm", "deu_Latn", false).size(), 3u);
    EXPECT_FALSE(rs::done_item_ids(rows, "mgsm", "deu_Latn", false).count("d"));
    // Resuming cuts the partial line, then item d is redone cleanly.
    {
        rs::ResultsWriter w(path_);
        w.append({"mgsm", "deu_Latn", "d", "4", "4", true, false});
    }
    const auto again = rs::read_results(path_);
    ASSERT_EQ(again.size(), 4u);
    EXPECT_EQ(again[3].item_id, "d");
    EXPECT_TRUE(again[3].correct);
    // Even a complete-looking record without its newline is ignored.
    write_raw("task,lang,item_id,gold,pred,correct,steered\nmgsm,deu_Latn,a,1,1,1,0");
    EXPECT_TRUE(rs::read_results(path_).empty());
}

TEST_F(ResultsFile, MissingOrHeaderOnlyFiles) {
    EXPECT_TRUE(rs::read_results(path_).empty());  // no file yet
    { rs::ResultsWriter w(path_); }
    EXPECT_EQ(slurp(), "task,lang,item_id,gold,pred,correct,steered\n");
    EXPECT_TRUE(rs::read_results(path_).empty());
    // A half-written header: the writer starts the file afresh.
    write_raw("task,la");
    { rs::ResultsWriter w(path_); }
    EXPECT_EQ(slurp(), "task,lang,item_id,gold,pred,correct,steered\n");
}

TEST_F(ResultsFile, WriterCreatesTheDirectory) {
    const std::string nested = (dir_ / "run1" / "base" / "results.csv").string();
    {
        rs::ResultsWriter w(nested);
        w.append(row("x", true));
    }
    EXPECT_EQ(rs::read_results(nested).size(), 1u);
}

TEST_F(ResultsFile, QuotingRoundTrips) {
    const rs::ResultRow tricky{"belebele", "eng_Latn", "id,with \"comma\"", "B", "multi\nline", false, true};
    EXPECT_EQ(rs::format_result_row(tricky), "belebele,eng_Latn,\"id,with \"\"comma\"\"\",B,multi line,0,1");
    {
        rs::ResultsWriter w(path_);
        w.append(tricky);
    }
    const auto rows = rs::read_results(path_);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].item_id, "id,with \"comma\"");
    EXPECT_EQ(rows[0].pred, "multi line");
    EXPECT_TRUE(rows[0].steered);
    EXPECT_EQ(rows[0].pred.size(), 10u);
}

TEST_F(ResultsFile, MalformedFilesAreErrors) {
    write_raw("item,correct\nx,1\n");
    EXPECT_THROW(rs::read_results(path_), rs::Error);
    EXPECT_THROW(rs::ResultsWriter w(path_), rs::Error);  // never append to a foreign file
    write_raw("task,lang,item_id,gold,pred,correct,steered\nmgsm,deu_Latn,a,1,1\n");
    try {
        rs::read_results(path_);
        FAIL() << "expected rs::Error";
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("results.csv:2"), std::string::npos) << e.what();
    }
    write_raw("task,lang,item_id,gold,pred,correct,steered\nmgsm,deu_Latn,a,1,1,yes,0\n");
    EXPECT_THROW(rs::read_results(path_), rs::Error);
}

TEST(Summary, AccuracyAndCi) {
    // deu: 3 of 4 right; fra: 1 of 2 (its item f1 re-run: the later row, correct, wins).
    const std::vector<rs::ResultRow> rows = {
        {"mgsm", "deu_Latn", "d1", "1", "1", true, false},
        {"mgsm", "deu_Latn", "d2", "1", "1", true, false},
        {"mgsm", "deu_Latn", "d3", "1", "2", false, false},
        {"mgsm", "deu_Latn", "d4", "1", "1", true, false},
        {"mgsm", "fra_Latn", "f1", "1", "2", false, false},
        {"mgsm", "fra_Latn", "f2", "1", "2", false, false},
        {"mgsm", "fra_Latn", "f1", "1", "1", true, false},
    };
    rs::BootstrapOptions opt;
    opt.seed = 11;
    const auto s = rs::summarize_results(rows, opt);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].lang, "deu_Latn");
    EXPECT_EQ(s[0].n, 4);
    EXPECT_DOUBLE_EQ(s[0].accuracy, 0.75);
    EXPECT_LE(s[0].ci_lo, 0.75);
    EXPECT_GE(s[0].ci_hi, 0.75);
    EXPECT_EQ(s[1].lang, "fra_Latn");
    EXPECT_EQ(s[1].n, 2);
    EXPECT_DOUBLE_EQ(s[1].accuracy, 0.5);
    // Deterministic for a seed.
    const auto t = rs::summarize_results(rows, opt);
    EXPECT_EQ(s[0].ci_lo, t[0].ci_lo);
    EXPECT_EQ(s[0].ci_hi, t[0].ci_hi);
    const std::string csv = rs::format_summary(s);
    EXPECT_TRUE(csv.starts_with("task,lang,n,accuracy,ci_lo,ci_hi\nmgsm,deu_Latn,4,0.750000,"));
}

TEST(Summary, ConstantOutcomesAndMixedConditions) {
    const std::vector<rs::ResultRow> all_right = {{"t", "l", "1", "A", "A", true, true},
                                                  {"t", "l", "2", "B", "B", true, true}};
    const auto s = rs::summarize_results(all_right, {});
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].accuracy, 1.0);
    EXPECT_EQ(s[0].ci_lo, 1.0);
    EXPECT_EQ(s[0].ci_hi, 1.0);
    EXPECT_TRUE(rs::summarize_results(std::vector<rs::ResultRow>{}, {}).empty());
    const std::vector<rs::ResultRow> mixed = {{"t", "l", "1", "A", "A", true, false},
                                              {"t", "l", "1", "A", "A", true, true}};
    EXPECT_THROW(rs::summarize_results(mixed, {}), rs::Error);
}

TEST_F(ResultsFile, WriteSummaryFile) {
    const std::vector<rs::SummaryRow> rows = {{"mgsm", "deu_Latn", 248, 0.5, 0.25, 0.75}};
    const std::string p = (dir_ / "summary.csv").string();
    rs::write_summary(p, rows);
    std::ifstream in(p);
    std::ostringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "task,lang,n,accuracy,ci_lo,ci_hi\nmgsm,deu_Latn,248,0.500000,0.250000,0.750000\n");
}

}  // namespace

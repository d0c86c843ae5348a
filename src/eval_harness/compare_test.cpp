// eval_compare.h: the base-vs-steered table on a hand-made five-language run (pivot, two low-resource
// languages, an unpaired item, another task's rows): per-language accuracies, Δ, McNemar b/c and exact p,
// the unweighted averages and sign tests, ordering, determinism, and the Markdown / CSV rendering.
// Expected values are derived by hand in the comments.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "routescope/common.h"
#include "routescope/eval_compare.h"

namespace {

constexpr double kTol = 1e-12;

// Appends one row per character of `pattern` ('1' = correct) for items "<lang>/<i>".
void add(std::vector<rs::ResultRow> & rows, const std::string & task, const std::string & lang,
         const std::string & pattern, bool steered) {
    for (size_t i = 0; i < pattern.size(); ++i) {
        const bool ok = pattern[i] == '1';
        rows.push_back({task, lang, lang + "/" + std::to_string(i), "A", ok ? "A" : "B", ok, steered});
    }
}

// Per language (10 items each), base → steered, with b = base-only and c = steered-only correct:
//   eng_Latn (pivot) 9 → 8, b = 1, c = 0: p = 1
//   ben_Beng*        2 → 6, b = 1, c = 5: p = 2·P(X ≤ 1 | 6) = 2·7/64 = 0.21875
//   deu_Latn         5 → 8, b = 0, c = 3: p = 2·P(X ≤ 0 | 3) = 2/8 = 0.25
//   fra_Latn         6 → 5, b = 2, c = 1: p = 2·P(X ≤ 1 | 3) = 1
//   swh_Latn*        4 → 4, b = 1, c = 1: p = 1
// Non-pivot AVG: base (0.2 + 0.5 + 0.6 + 0.4)/4 = 0.425, steered (0.6 + 0.8 + 0.5 + 0.4)/4 = 0.575, Δ = 0.15;
//   signs +, +, −, 0 ⇒ sign test 2 vs 1: p = 2·P(X ≤ 1 | 3) = 1.
// Low-res AVG: base (0.2 + 0.4)/2 = 0.3, steered (0.6 + 0.4)/2 = 0.5, Δ = 0.2; signs +, 0 ⇒ p = 1.
struct Runs {
    std::vector<rs::ResultRow> base, steered;
};

Runs five_languages() {
    Runs r;
    add(r.base, "mgsm", "eng_Latn", "1111111110", false);
    add(r.steered, "mgsm", "eng_Latn", "1111111100", true);
    add(r.base, "mgsm", "deu_Latn", "1111100000", false);
    add(r.steered, "mgsm", "deu_Latn", "11111111000", true);  // item deu_Latn/10 only in steered
    add(r.base, "mgsm", "ben_Beng", "1100000000", false);
    add(r.steered, "mgsm", "ben_Beng", "1011111000", true);
    add(r.base, "mgsm", "swh_Latn", "1111000000", false);
    add(r.steered, "mgsm", "swh_Latn", "0111100000", true);
    add(r.base, "mgsm", "fra_Latn", "1111110000", false);
    add(r.steered, "mgsm", "fra_Latn", "0011111000", true);
    add(r.base, "belebele", "deu_Latn", "0000", false);  // another task: ignored
    add(r.steered, "belebele", "deu_Latn", "1111", true);
    return r;
}

TEST(CompareRuns, PerLanguageByHand) {
    const Runs r = five_languages();
    const rs::ComparisonTable t = rs::compare_runs(r.base, r.steered, "mgsm");
    EXPECT_EQ(t.task, "mgsm");
    ASSERT_EQ(t.langs.size(), 5u);
    // Pivot first, then by code.
    EXPECT_EQ(t.langs[0].lang, "eng_Latn");
    EXPECT_EQ(t.langs[1].lang, "ben_Beng");
    EXPECT_EQ(t.langs[2].lang, "deu_Latn");
    EXPECT_EQ(t.langs[3].lang, "fra_Latn");
    EXPECT_EQ(t.langs[4].lang, "swh_Latn");
    EXPECT_TRUE(t.langs[0].pivot);
    EXPECT_TRUE(t.langs[1].low_resource);
    EXPECT_FALSE(t.langs[2].low_resource);
    EXPECT_TRUE(t.langs[4].low_resource);

    const rs::LangComparison & eng = t.langs[0];
    EXPECT_NEAR(eng.base, 0.9, kTol);
    EXPECT_NEAR(eng.steered, 0.8, kTol);
    EXPECT_NEAR(eng.delta, -0.1, kTol);
    EXPECT_EQ(eng.p_mcnemar, 1.0);

    const rs::LangComparison & ben = t.langs[1];
    EXPECT_EQ(ben.counts.base_only, 1);
    EXPECT_EQ(ben.counts.steered_only, 5);
    EXPECT_NEAR(ben.p_mcnemar, 0.21875, kTol);

    const rs::LangComparison & deu = t.langs[2];
    EXPECT_EQ(deu.n, 10);
    EXPECT_EQ(deu.n_unpaired, 1);
    EXPECT_NEAR(deu.base, 0.5, kTol);
    EXPECT_NEAR(deu.steered, 0.8, kTol);
    EXPECT_NEAR(deu.delta, 0.3, kTol);
    EXPECT_EQ(deu.counts.base_only, 0);
    EXPECT_EQ(deu.counts.steered_only, 3);
    EXPECT_NEAR(deu.p_mcnemar, 0.25, kTol);
    // Paired bootstrap: each d_i ∈ {0, 1} ⇒ resampled means in [0, 1]; the CI brackets Δ.
    EXPECT_LE(deu.delta_ci.lo, 0.3);
    EXPECT_GE(deu.delta_ci.hi, 0.3);
    EXPECT_GE(deu.delta_ci.lo, 0.0);

    const rs::LangComparison & fra = t.langs[3];
    EXPECT_EQ(fra.counts.base_only, 2);
    EXPECT_EQ(fra.counts.steered_only, 1);
    EXPECT_EQ(fra.p_mcnemar, 1.0);
    EXPECT_NEAR(t.langs[4].delta, 0.0, kTol);
}

TEST(CompareRuns, AveragesAndSignTests) {
    const Runs r = five_languages();
    const rs::ComparisonTable t = rs::compare_runs(r.base, r.steered, "mgsm");
    EXPECT_EQ(t.non_pivot.n_langs, 4);
    EXPECT_NEAR(t.non_pivot.base, 0.425, kTol);
    EXPECT_NEAR(t.non_pivot.steered, 0.575, kTol);
    EXPECT_NEAR(t.non_pivot.delta, 0.15, kTol);
    EXPECT_EQ(t.non_pivot.sign.n_pos, 2);
    EXPECT_EQ(t.non_pivot.sign.n_neg, 1);
    EXPECT_EQ(t.non_pivot.sign.n_zero, 1);
    EXPECT_EQ(t.non_pivot.sign.p, 1.0);
    EXPECT_LE(t.non_pivot.delta_ci.lo, 0.15);
    EXPECT_GE(t.non_pivot.delta_ci.hi, 0.15);

    EXPECT_EQ(t.low_resource.n_langs, 2);
    EXPECT_NEAR(t.low_resource.base, 0.3, kTol);
    EXPECT_NEAR(t.low_resource.steered, 0.5, kTol);
    EXPECT_NEAR(t.low_resource.delta, 0.2, kTol);
    EXPECT_EQ(t.low_resource.sign.n_pos, 1);
    EXPECT_EQ(t.low_resource.sign.n_zero, 1);
}

TEST(CompareRuns, OptionsChangePivotAndLowResourceSet) {
    const Runs r = five_languages();
    rs::CompareOptions opt;
    opt.pivot = "deu_Latn";
    opt.low_resource = {"fra_Latn"};
    const rs::ComparisonTable t = rs::compare_runs(r.base, r.steered, "mgsm", opt);
    EXPECT_EQ(t.langs[0].lang, "deu_Latn");
    // Non-pivot now eng, ben, fra, swh: base (0.9 + 0.2 + 0.6 + 0.4)/4 = 0.525, steered (0.8 + 0.6 + 0.5 +
    // 0.4)/4 = 0.575.
    EXPECT_NEAR(t.non_pivot.base, 0.525, kTol);
    EXPECT_NEAR(t.non_pivot.steered, 0.575, kTol);
    EXPECT_EQ(t.low_resource.n_langs, 1);
    EXPECT_NEAR(t.low_resource.delta, -0.1, kTol);
}

TEST(CompareRuns, DeterministicForASeed) {
    const Runs r = five_languages();
    const rs::ComparisonTable a = rs::compare_runs(r.base, r.steered, "mgsm");
    const rs::ComparisonTable b = rs::compare_runs(r.base, r.steered, "mgsm");
    EXPECT_EQ(rs::comparison_csv(a), rs::comparison_csv(b));
    EXPECT_EQ(rs::comparison_markdown(a), rs::comparison_markdown(b));
}

TEST(CompareRuns, NoSharedItemsIsAnError) {
    const Runs r = five_languages();
    EXPECT_THROW(rs::compare_runs(r.base, r.steered, "gmmlu_med"), rs::Error);
    std::vector<rs::ResultRow> other;
    add(other, "mgsm", "jpn_Jpan", "11", true);
    EXPECT_THROW(rs::compare_runs(r.base, other, "mgsm"), rs::Error);
}

TEST(CompareRuns, LanguageInOneRunOnly) {
    Runs r = five_languages();
    add(r.base, "mgsm", "jpn_Jpan", "111", false);  // steered run has no Japanese yet
    const rs::ComparisonTable t = rs::compare_runs(r.base, r.steered, "mgsm");
    ASSERT_EQ(t.langs.size(), 6u);
    EXPECT_EQ(t.langs[4].lang, "jpn_Jpan");
    EXPECT_EQ(t.langs[4].n, 0);
    EXPECT_EQ(t.langs[4].n_unpaired, 3);
    EXPECT_EQ(t.non_pivot.n_langs, 4);  // left out of the averages
}

TEST(Render, MarkdownLayout) {
    const Runs r = five_languages();
    const std::string md = rs::comparison_markdown(rs::compare_runs(r.base, r.steered, "mgsm"));
    EXPECT_NE(md.find("| Language | n | base | steered | Δ | 95% CI of Δ | p |"), std::string::npos) << md;
    EXPECT_NE(md.find("| eng_Latn | 10 | 90.0% | 80.0% | -10.0 | ["), std::string::npos) << md;
    EXPECT_NE(md.find("| ben_Beng* | 10 | 20.0% | 60.0% | +40.0 | ["), std::string::npos) << md;
    EXPECT_NE(md.find("| 0.250 |\n"), std::string::npos) << md;
    EXPECT_NE(md.find("| swh_Latn* | 10 | 40.0% | 40.0% | 0.0 | ["), std::string::npos) << md;
    EXPECT_NE(md.find("| 1.000 |\n"), std::string::npos) << md;  // swh: b = c = 1 ⇒ p = 1
    EXPECT_NE(md.find("| non-pivot AVG | 4 langs | 42.5% | 57.5% | +15.0 | ["), std::string::npos) << md;
    EXPECT_NE(md.find("| low-res AVG | 2 langs | 30.0% | 50.0% | +20.0 | ["), std::string::npos) << md;
    EXPECT_NE(md.find("2 up, 1 down, 1 tied over 4 non-pivot languages"), std::string::npos) << md;
}

TEST(Render, Csv) {
    const Runs r = five_languages();
    const std::string csv = rs::comparison_csv(rs::compare_runs(r.base, r.steered, "mgsm"));
    EXPECT_TRUE(
        csv.starts_with("task,lang,n,n_unpaired,base,steered,delta,ci_lo,ci_hi,b,c,p_mcnemar,"
                        "p_mcnemar_chi2,pivot,low_resource\n"
                        "mgsm,eng_Latn,10,0,0.900000,0.800000,-0.100000,"))
        << csv;
    EXPECT_NE(csv.find("\nmgsm,deu_Latn,10,1,0.500000,0.800000,0.300000,"), std::string::npos) << csv;
    EXPECT_NE(csv.find(",0,3,0.25,"), std::string::npos) << csv;  // deu: b, c, exact p
    EXPECT_NE(csv.find("\nmgsm,AVG_non_pivot,4,0,0.425000,0.575000,0.150000,"), std::string::npos) << csv;
    EXPECT_NE(csv.find("\nmgsm,AVG_low_resource,2,0,0.300000,0.500000,0.200000,"), std::string::npos) << csv;
    // 5 languages + 2 averages + header.
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 8);
}

// Languages without a low-resource member: the low-res row says so instead of reading as 0% accuracy.
TEST(Render, EmptyAverageIsMarkedAbsent) {
    Runs r;
    add(r.base, "belebele", "eng_Latn", "1100", false);
    add(r.steered, "belebele", "eng_Latn", "1110", true);
    add(r.base, "belebele", "deu_Latn", "1000", false);
    add(r.steered, "belebele", "deu_Latn", "1100", true);
    const auto t = rs::compare_runs(r.base, r.steered, "belebele");
    EXPECT_EQ(t.low_resource.n_langs, 0);
    const std::string md = rs::comparison_markdown(t);
    EXPECT_NE(md.find("| low-res AVG | 0 langs | – | – | – | – | – |\n"), std::string::npos) << md;
    const std::string csv = rs::comparison_csv(t);
    EXPECT_NE(csv.find("\nbelebele,AVG_low_resource,0,0,,,,,,0,0,,,0,1\n"), std::string::npos) << csv;
}

// Two eval directories: every shared task gets a table, one compare.md / compare.csv holds them all.
TEST(CompareDirs, TablesPerSharedTaskAndFiles) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(testing::TempDir()) / "rs_compare_dirs";
    fs::remove_all(dir);
    const Runs r = five_languages();
    for (const auto & [name, rows] : {std::pair{"base", &r.base}, std::pair{"steered", &r.steered}}) {
        rs::ResultsWriter w((dir / name / "results.csv").string());
        for (const auto & row : *rows) w.append(row);
    }
    const auto tables =
        rs::compare_result_dirs((dir / "base").string(), (dir / "steered").string(), "", {}, dir.string());
    ASSERT_EQ(tables.size(), 2u);  // mgsm and belebele, in the base run's order
    EXPECT_EQ(tables[0].task, "mgsm");
    EXPECT_EQ(tables[1].task, "belebele");
    std::ifstream md(dir / "compare.md"), csv(dir / "compare.csv");
    std::string md_text((std::istreambuf_iterator<char>(md)), {}),
        csv_text((std::istreambuf_iterator<char>(csv)), {});
    EXPECT_NE(md_text.find("**mgsm**"), std::string::npos);
    EXPECT_NE(md_text.find("**belebele**"), std::string::npos);
    EXPECT_EQ(csv_text.find("task,lang"), 0u);
    EXPECT_EQ(csv_text.find("task,lang", 1), std::string::npos);  // one header for both tables
    EXPECT_NE(csv_text.find("\nbelebele,deu_Latn,4,0,0.000000,1.000000,"), std::string::npos) << csv_text;
    EXPECT_EQ(rs::compare_result_dirs((dir / "base").string(), (dir / "steered").string(), "belebele", {},
                                      dir.string())
                  .size(),
              1u);
    EXPECT_THROW(
        rs::compare_result_dirs((dir / "base").string(), (dir / "none").string(), "", {}, dir.string()),
        rs::Error);
    EXPECT_THROW(rs::compare_result_dirs((dir / "base").string(), (dir / "steered").string(), "xnli", {},
                                         dir.string()),
                 rs::Error);
}

}  // namespace

// Evaluation tasks over the staged data: names, languages, prompt counts and the Global-MMLU / Belebele
// data errors a user meets first.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "routescope/common.h"
#include "routescope/eval_tasks.h"

namespace {

const std::string kData = RS_SOURCE_DIR "/data";

rs::EvalData data() {
    return {kData, "", ""};
}

TEST(EvalTasks, Names) {
    EXPECT_EQ(rs::parse_eval_task("mmlu-med"), rs::EvalTask::gmmlu_med);
    EXPECT_EQ(rs::parse_eval_task("gmmlu_med"), rs::EvalTask::gmmlu_med);
    EXPECT_EQ(rs::eval_task_name(rs::parse_eval_task("mgsm")), "mgsm");
    EXPECT_EQ(rs::eval_task_name(rs::EvalTask::belebele), "belebele");
    EXPECT_TRUE(rs::eval_task_generates(rs::EvalTask::mgsm));
    EXPECT_FALSE(rs::eval_task_generates(rs::EvalTask::belebele));
    try {
        rs::parse_eval_task("xnli");
        FAIL();
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("unknown task 'xnli'"), std::string::npos);
    }
}

TEST(EvalTasks, LanguagesAndPrompts) {
    EXPECT_EQ(rs::eval_task_languages(rs::EvalTask::mgsm, data()).size(), 11u);
    EXPECT_EQ(rs::eval_task_languages(rs::EvalTask::belebele, data()),
              (std::vector<std::string>{"deu_Latn", "eng_Latn"}));
    EXPECT_EQ(rs::eval_task_languages(rs::EvalTask::gmmlu_med, data()),
              (std::vector<std::string>{"eng_Latn"}));

    const auto m = rs::eval_task_prompts(rs::EvalTask::mgsm, "sw", data(), 2);  // ISO codes work too
    ASSERT_EQ(m.size(), 248u);                                                  // 250 minus the 2 exemplars
    EXPECT_EQ(m[0].item_id, "mgsm/swh_Latn/2");
    EXPECT_EQ(m[0].lang, "swh_Latn");
    EXPECT_TRUE(m[0].prompt.starts_with("Swali: "));
    EXPECT_FALSE(m[0].stops.empty());
    const auto g = rs::eval_task_prompts(rs::EvalTask::gmmlu_med, "eng_Latn", data(), 0);
    ASSERT_EQ(g.size(), 420u);
    EXPECT_EQ(g[0].continuations, (std::vector<std::string>{" A", " B", " C", " D"}));
    EXPECT_TRUE(g[0].prompt.ends_with("\nAnswer:"));
    const auto b = rs::eval_task_prompts(rs::EvalTask::belebele, "deu_Latn", data(), 0);
    EXPECT_EQ(b.size(), 900u);
}

TEST(EvalTasks, GlobalMmluFromUserFiles) {
    const auto dir = std::filesystem::path(testing::TempDir()) / "rs_tasks_gmmlu";
    std::filesystem::create_directories(dir);
    try {
        rs::eval_task_prompts(rs::EvalTask::gmmlu_med, "deu_Latn", data(), 0);
        FAIL();
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("give --gmmlu DIR holding de.csv"), std::string::npos)
            << e.what();
    }
    // a German file with all 420 sampled rows (content irrelevant here)
    std::ofstream f(dir / "de.csv");
    f << "sample_id,subject,question,option_a,option_b,option_c,option_d,answer\n";
    const std::vector<std::pair<std::string, int>> subjects = {{"clinical_knowledge", 265},
                                                               {"college_medicine", 173},
                                                               {"human_aging", 223},
                                                               {"medical_genetics", 100},
                                                               {"nutrition", 306},
                                                               {"professional_medicine", 282},
                                                               {"virology", 166}};
    for (const auto & [s, n] : subjects)
        for (int i = 0; i < n; ++i) f << s << "/test/" << i << "," << s << ",F" << i << ",a,b,c,d,B\n";
    f.close();
    rs::EvalData d = data();
    d.gmmlu_dir = dir.string();
    EXPECT_EQ(rs::eval_task_languages(rs::EvalTask::gmmlu_med, d),
              (std::vector<std::string>{"deu_Latn", "eng_Latn"}));
    const auto de = rs::eval_task_prompts(rs::EvalTask::gmmlu_med, "deu_Latn", d, 0);
    const auto en = rs::eval_task_prompts(rs::EvalTask::gmmlu_med, "eng_Latn", d, 0);
    ASSERT_EQ(de.size(), 420u);
    for (size_t i = 0; i < de.size(); ++i) ASSERT_EQ(de[i].item_id, en[i].item_id);  // same sample, same ids
    EXPECT_EQ(de[0].lang, "deu_Latn");
    EXPECT_EQ(de[0].gold, "B");
}

TEST(EvalTasks, MissingBelebeleLanguage) {
    try {
        rs::eval_task_prompts(rs::EvalTask::belebele, "swh_Latn", data(), 0);
        FAIL();
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("no file for swh_Latn"), std::string::npos) << e.what();
    }
    EXPECT_THROW(rs::eval_task_prompts(rs::EvalTask::mgsm, "xx", data(), 2), rs::Error);
}

TEST(EvalTasks, ParallelItemKey) {
    EXPECT_EQ(rs::parallel_item_key("mgsm/deu_Latn/7", "deu_Latn"), "mgsm/7");
    EXPECT_EQ(rs::parallel_item_key("belebele/eng_Latn/3/1", "eng_Latn"), "belebele/3/1");
    EXPECT_EQ(rs::parallel_item_key("mmlu/test/virology/5", "deu_Latn"), "mmlu/test/virology/5");
}

TEST(EvalTasks, DevSplit) {
    int n_dev = 0;
    for (int i = 0; i < 10000; ++i) n_dev += rs::in_dev_split("mgsm/" + std::to_string(i), 0.3, 7);
    EXPECT_NEAR(n_dev / 10000.0, 0.3, 0.015);  // binomial sd ≈ 0.0046
    for (int i = 0; i < 100; ++i) {
        const std::string k = "belebele/" + std::to_string(i) + "/0";
        EXPECT_EQ(rs::in_dev_split(k, 0.5, 1), rs::in_dev_split(k, 0.5, 1));  // deterministic
        EXPECT_FALSE(rs::in_dev_split(k, 0.0, 1));
        EXPECT_TRUE(rs::in_dev_split(k, 1.0, 1));
    }
    int differ = 0;  // another seed draws another split
    for (int i = 0; i < 200; ++i)
        differ += rs::in_dev_split(std::to_string(i), 0.5, 1) != rs::in_dev_split(std::to_string(i), 0.5, 2);
    EXPECT_GT(differ, 50);
}

}  // namespace

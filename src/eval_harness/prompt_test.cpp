// eval_prompt.h: MGSM labels per language, the exemplar / evaluation split (exemplars excluded, k respected),
// the exact k-shot prompt string for a tiny case, stop strings, and the multiple-choice prompt for MMLU and
// Belebele items with their continuations.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "routescope/common.h"
#include "routescope/eval_extract.h"
#include "routescope/eval_prompt.h"

namespace {

std::vector<rs::MathItem> tiny_mgsm(const std::string & lang, int n) {
    std::vector<rs::MathItem> items;
    for (int i = 0; i < n; ++i)
        items.push_back({"mgsm/" + lang + "/" + std::to_string(i), lang, "Q" + std::to_string(i) + "?",
                         std::to_string(10 * i), ""});
    return items;
}

TEST(MgsmLabels, FloresAndShortCodes) {
    EXPECT_EQ(rs::mgsm_labels("eng_Latn").question, "Question:");
    EXPECT_EQ(rs::mgsm_labels("eng_Latn").answer, "Answer:");
    EXPECT_EQ(rs::mgsm_labels("deu_Latn").question, "Frage:");
    EXPECT_EQ(rs::mgsm_labels("de").question, "Frage:");
    EXPECT_EQ(rs::mgsm_labels("de").answer, "Antwort:");
    EXPECT_EQ(rs::mgsm_labels("zh").question, "问题:");
    EXPECT_EQ(rs::mgsm_labels("swh_Latn").question, "Swali:");
    // Unknown language: English labels.
    EXPECT_EQ(rs::mgsm_labels("xyz_Latn").question, "Question:");
    // Every MGSM language has both labels.
    for (const char * code : {"bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"}) {
        const rs::MgsmLabels l = rs::mgsm_labels(code);
        EXPECT_FALSE(l.question.empty()) << code;
        EXPECT_FALSE(l.answer.empty()) << code;
    }
}

TEST(MgsmSplit, FirstKAreExemplarsAndExcluded) {
    const auto items = tiny_mgsm("eng_Latn", 6);
    const rs::MgsmSplit s = rs::mgsm_split(items, 2);
    ASSERT_EQ(s.exemplars.size(), 2u);
    ASSERT_EQ(s.eval.size(), 4u);
    EXPECT_EQ(s.exemplars[0].id, "mgsm/eng_Latn/0");
    EXPECT_EQ(s.exemplars[1].id, "mgsm/eng_Latn/1");
    EXPECT_EQ(s.eval.front().id, "mgsm/eng_Latn/2");
    for (const auto & e : s.eval)
        for (const auto & x : s.exemplars) EXPECT_NE(e.id, x.id);
    // k = 0 evaluates everything; too few items is a user error.
    EXPECT_EQ(rs::mgsm_split(items, 0).eval.size(), 6u);
    EXPECT_EQ(rs::mgsm_split(items, 5).eval.size(), 1u);
    EXPECT_THROW(rs::mgsm_split(items, 6), rs::Error);
}

TEST(MgsmPrompt, ExactStringForTwoShot) {
    const auto items = tiny_mgsm("eng_Latn", 4);
    const rs::MgsmSplit s = rs::mgsm_split(items, 2);
    const std::string p = rs::mgsm_prompt(s.exemplars, s.eval[0], rs::mgsm_labels("eng_Latn"));
    EXPECT_EQ(p,
              "Question: Q0?\nAnswer: 0\n\n"
              "Question: Q1?\nAnswer: 10\n\n"
              "Question: Q2?\nAnswer:");
}

TEST(MgsmPrompt, KRespectedAndLocalised) {
    const auto items = tiny_mgsm("deu_Latn", 10);
    const rs::MgsmLabels de = rs::mgsm_labels("deu_Latn");
    for (int k : {0, 1, 3, 8}) {
        const rs::MgsmSplit s = rs::mgsm_split(items, k);
        const std::string p = rs::mgsm_prompt(s.exemplars, s.eval.back(), de);
        // k exemplars + the evaluated question ⇒ k + 1 question labels, k answered exemplars.
        size_t n_q = 0;
        for (size_t pos = p.find("Frage:"); pos != std::string::npos; pos = p.find("Frage:", pos + 1)) ++n_q;
        EXPECT_EQ(n_q, (size_t)k + 1) << "k=" << k;
        EXPECT_EQ(std::count(p.begin(), p.end(), '\n'), 3 * k + 1) << "k=" << k;
        EXPECT_TRUE(p.ends_with("Frage: Q9?\nAntwort:")) << "k=" << k;
        EXPECT_EQ(p.find("Question"), std::string::npos);
    }
}

TEST(MgsmPrompt, StopStringsCutTheNextQuestion) {
    const rs::MgsmLabels zh = rs::mgsm_labels("zho_Hans");
    const std::vector<std::string> stops = rs::mgsm_stop_strings(zh);
    ASSERT_EQ(stops.size(), 3u);
    EXPECT_EQ(stops[0], "\n\n问题:");
    EXPECT_EQ(stops.back(), "问题:");
    // A generation that runs on into a made-up next question: the stop keeps the answer's number.
    const rs::MathScore s = rs::score_math("42", " 42\n\n问题: 小明有 7 个苹果", stops);
    EXPECT_EQ(s.pred, "42");
    EXPECT_TRUE(s.correct);
}

rs::McItem mmlu_item() {
    return {"mmlu/test/college_medicine/3",
            "eng_Latn",
            "college_medicine",
            "",
            "Which organ produces insulin?",
            {"Liver", "Pancreas", "Kidney", "Spleen"},
            1};
}

TEST(McPrompt, MmluWithSubjectHeader) {
    EXPECT_EQ(rs::mc_prompt(mmlu_item()),
              "The following are multiple choice questions (with answers) about college medicine.\n\n"
              "Which organ produces insulin?\nA. Liver\nB. Pancreas\nC. Kidney\nD. Spleen\nAnswer:");
    EXPECT_EQ(rs::mc_prompt(mmlu_item(), {.subject_header = false}),
              "Which organ produces insulin?\nA. Liver\nB. Pancreas\nC. Kidney\nD. Spleen\nAnswer:");
}

TEST(McPrompt, BelebeleWithPassage) {
    const rs::McItem it{"belebele/eng_Latn/17/1",
                        "eng_Latn",
                        "",
                        "The cat sat on the mat. It was warm.",
                        "Where did the cat sit?",
                        {"On the roof", "On the mat", "In the box", "Nowhere"},
                        1};
    EXPECT_EQ(rs::mc_prompt(it),
              "The cat sat on the mat. It was warm.\n\nWhere did the cat sit?\n"
              "A. On the roof\nB. On the mat\nC. In the box\nD. Nowhere\nAnswer:");
}

TEST(McPrompt, ContinuationsMatchTheLetters) {
    const std::vector<std::string> c = rs::mc_continuations(4);
    EXPECT_EQ(c, (std::vector<std::string>{" A", " B", " C", " D"}));
    EXPECT_TRUE(rs::mc_continuations(0).empty());
    // Prompt + continuation of the gold option reads "...\nAnswer: B".
    const rs::McItem it = mmlu_item();
    EXPECT_TRUE((rs::mc_prompt(it) + c[(size_t)it.gold]).ends_with("\nAnswer: B"));
    // Two options (e.g. a true/false item) also work.
    rs::McItem tf = it;
    tf.subject.clear();
    tf.options = {"True", "False"};
    EXPECT_EQ(rs::mc_prompt(tf), "Which organ produces insulin?\nA. True\nB. False\nAnswer:");
}

TEST(EvalPrompts, MgsmListSkipsExemplars) {
    const auto items = tiny_mgsm("fra_Latn", 5);
    const std::vector<rs::EvalPrompt> p = rs::mgsm_eval_prompts(items, 2);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[0].item_id, "mgsm/fra_Latn/2");
    EXPECT_EQ(p[2].item_id, "mgsm/fra_Latn/4");
    EXPECT_EQ(p[0].lang, "fra_Latn");
    EXPECT_EQ(p[0].gold, "20");
    EXPECT_EQ(p[0].prompt,
              "Question : Q0?\nRéponse : 0\n\n"
              "Question : Q1?\nRéponse : 10\n\n"
              "Question : Q2?\nRéponse :");
    EXPECT_EQ(p[0].stops, rs::mgsm_stop_strings(rs::mgsm_labels("fr")));
    EXPECT_TRUE(p[0].continuations.empty());
    // No exemplar id is ever evaluated, and no prompt contains its own answer line.
    for (const rs::EvalPrompt & e : p) {
        EXPECT_NE(e.item_id, "mgsm/fra_Latn/0");
        EXPECT_NE(e.item_id, "mgsm/fra_Latn/1");
        EXPECT_EQ(e.prompt.find("Réponse : " + e.gold + "\n"), std::string::npos);
    }
    EXPECT_THROW(rs::mgsm_eval_prompts(items, 5), rs::Error);
}

TEST(EvalPrompts, McListHasLettersAndContinuations) {
    const std::vector<rs::McItem> items = {mmlu_item()};
    const std::vector<rs::EvalPrompt> p = rs::mc_eval_prompts(items);
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].item_id, "mmlu/test/college_medicine/3");
    EXPECT_EQ(p[0].gold, "B");
    EXPECT_EQ(p[0].prompt, rs::mc_prompt(items[0]));
    EXPECT_EQ(p[0].continuations, rs::mc_continuations(4));
    EXPECT_TRUE(p[0].stops.empty());
}

}  // namespace

// lm-eval's mgsm_direct_de / _zh / _fr prompts and stops (lm_eval/tasks/mgsm/direct/*.yaml).
TEST(MgsmDirect, HarnessLabelsAndStops) {
    rs::MathItem it;
    it.id = "mgsm/x/0";
    it.question = "Q?";
    it.answer = "3";
    for (const auto & [lang, want, stop] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"deu_Latn", "Frage: Q?\nAntwort:", "Frage:"},
             {"zho_Hans", "问题: Q?\nAnswer:", "问题:"},
             {"fra_Latn", "Question : Q?\nRéponse :", "Question :"},
             {"swh_Latn", "Swali: Q?\nAnswer:", "Swali:"},
             {"spa_Latn", "Pregunta: Q?\nRespuesta:", "Pregunta:"}}) {
        it.lang = lang;
        const std::vector<rs::MathItem> items{it};
        const auto p = rs::mgsm_direct_eval_prompts(items);
        ASSERT_EQ(p.size(), 1u);
        EXPECT_EQ(p[0].prompt, want);
        EXPECT_EQ(p[0].stops, (std::vector<std::string>{stop, "</s>", "<|im_end|>"}));
    }
}

// lm-eval's Belebele prompt (lm_eval/tasks/belebele/_default_template_yaml), full-width colon included.
TEST(McPrompt, BelebeleAsTheHarness) {
    rs::McItem it;
    it.passage = "The passage.";
    it.question = "  Which? \n";
    it.options = {"a", "b", "c", "d"};
    it.gold = 1;
    rs::McPromptOptions o;
    o.belebele_lm_eval = true;
    EXPECT_EQ(rs::mc_prompt(it, o), "P: The passage.\nQ: Which?\nA: a\nB: b\nC: c\nD: d\nAnswer\xEF\xBC\x9A");
}

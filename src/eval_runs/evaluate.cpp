// run_eval / evaluate_prompts (routescope/evaluate.h): task prompts → engine → results.csv.
//
// Work is streamed item by item: a generation is scored and appended when its sequence finishes, a chunk
// of multiple-choice items when its decode returns, so an interruption loses at most the items in flight
// and a re-run skips every item already in results.csv. Items are decoded in fixed units (WorkUnit), so
// what a re-run writes does not depend on where the interruption fell.
#include "routescope/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "routescope/common.h"
#include "routescope/eval_extract.h"
#include "routescope/file_io.h"
#include "routescope/languages.h"
#include "routescope/model.h"
#include "routescope/progress.h"
#include "routescope/steer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rs {
namespace {

constexpr size_t kMcChunk = 16;  // multiple-choice items per output_logits call

struct StopRequested {};  // stop_after reached (testing aid): unwinds out of the engine's loops

// details.jsonl: one JSON object per line, appended and flushed. A line cut by a crash is ended with a
// newline on the next open, so later lines stay readable.
class DetailsFile {
  public:
    explicit DetailsFile(const std::string & path) : path_(path) {
        std::error_code ec;
        const bool cut = fs::exists(path, ec) && fs::file_size(path, ec) > 0 && last_byte(path) != '\n';
        file_ = std::fopen(path.c_str(), "ab");
        if (!file_) throw Error(fmt::format("cannot open {} for appending", path));
        if (cut) std::fputc('\n', file_);
    }
    ~DetailsFile() {
        if (file_) std::fclose(file_);
    }
    DetailsFile(const DetailsFile &) = delete;
    DetailsFile & operator=(const DetailsFile &) = delete;
    void append(const json & j) {
        const std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
            throw Error(fmt::format("cannot write {} (disk full?)", path_));
    }

  private:
    static int last_byte(const std::string & path) {
        std::FILE * f = std::fopen(path.c_str(), "rb");
        if (!f) return '\n';
        std::fseek(f, -1, SEEK_END);
        const int c = std::fgetc(f);
        std::fclose(f);
        return c;
    }
    std::string path_;
    std::FILE * file_ = nullptr;
};

// Tokens of a prompt that must fit one batch; BOS as the model wants it, inside the chat template.
std::vector<int32_t> prompt_tokens(const Engine & e, const ChatFrame & chat, const std::string & text) {
    const int limit = e.params().n_batch;
    auto toks = e.tokenize_chat(chat, text, limit + 1).tokens;
    if ((int)toks.size() > limit)
        throw Error(
            fmt::format("a prompt of more than {} tokens does not fit one batch; raise --batch", limit));
    return toks;
}

// One multiple-choice item as sequences to decode and how each option is scored from their rows.
struct McPlan {
    std::vector<std::vector<int32_t>> seqs;       // the shared context alone, or one sequence per option
    std::vector<std::vector<int32_t>> positions;  // per sequence: positions whose output logits are needed
    struct Option {
        size_t seq = 0;               // which sequence
        size_t row0 = 0;              // first of its rows in that sequence's output rows
        std::vector<int32_t> tokens;  // continuation tokens, scored one per row
    };
    std::vector<Option> options;
};

// Tokenisation as in the LM Evaluation Harness (lm_eval/api/model.py, _encode_pair): trailing whitespace of
// the context moves to the continuation, whole = tok(context + continuation), ctx = tok(context), and the
// continuation is whole[len(ctx):]. In a chat template the context is the user message and the
// continuation follows the assistant's turn: tokens of the framed context, then of the continuation alone
// (lm-eval's chat path also tokenizes them apart).
McPlan plan_mc(const Engine & e, const ChatFrame & chat, const EvalPrompt & p) {
    std::string context = p.prompt;
    std::string moved;
    while (!context.empty() && (context.back() == ' ' || context.back() == '\t')) {
        moved.insert(moved.begin(), context.back());
        context.pop_back();
    }
    const auto ctx = prompt_tokens(e, chat, context);
    std::vector<std::vector<int32_t>> wholes;
    bool one_token_each = true;
    for (const auto & c : p.continuations) {
        auto whole = chat.none() ? prompt_tokens(e, chat, context + moved + c) : ctx;
        if (!chat.none()) {
            const auto cont = e.tokenize(moved + c, e.params().n_batch + 1, false);
            whole.insert(whole.end(), cont.begin(), cont.end());
            if ((int)whole.size() > e.params().n_batch)
                throw Error(
                    fmt::format("a prompt of more than {} tokens does not fit one batch; raise --batch",
                                e.params().n_batch));
        }
        if (whole.size() <= ctx.size())
            throw Error(fmt::format("{}: continuation '{}' adds no token to the context", p.item_id, c));
        one_token_each = one_token_each && whole.size() == ctx.size() + 1 &&
                         std::equal(ctx.begin(), ctx.end(), whole.begin());
        wholes.push_back(std::move(whole));
    }
    McPlan plan;
    const auto n_ctx = (int32_t)ctx.size();
    if (one_token_each) {  // decode the context once: every option is scored on its last row
        plan.seqs.push_back(ctx);
        plan.positions.push_back({n_ctx - 1});
        for (const auto & w : wholes) plan.options.push_back({0, 0, {w.back()}});
        return plan;
    }
    for (size_t i = 0; i < wholes.size(); ++i) {
        std::vector<int32_t> pos;
        for (int32_t q = n_ctx - 1; q + 1 < (int32_t)wholes[i].size(); ++q) pos.push_back(q);
        plan.options.push_back({i, 0, std::vector<int32_t>(wholes[i].begin() + n_ctx, wholes[i].end())});
        plan.positions.push_back(std::move(pos));
        plan.seqs.push_back(std::move(wholes[i]));
    }
    return plan;
}

std::string stop_name(Generation::Stop s) {
    switch (s) {
        case Generation::Stop::eos:
            return "eos";
        case Generation::Stop::stop_string:
            return "stop";
        case Generation::Stop::length:
            return "length";
    }
    return "?";
}

// eval.json: what the directory's results were produced with. A later run must use the same model and
// steering, and for a task it has already run, the same prompts settings. Returns the eval.json to write
// once every input has been validated (the model loaded): a refused run must not leave an eval.json
// that blocks its corrected rerun (issue #15).
json check_eval_dir(const std::string & out, const json & model, const json & steer, const std::string & task,
                    const json & task_opts) {
    const std::string path = (fs::path(out) / "eval.json").string();
    json meta;
    std::error_code ec;
    if (fs::exists(path, ec)) {
        if (!fs::is_regular_file(path, ec))
            throw Error(fmt::format("{}: not a file (remove it or use another --out)", path));
        try {
            std::ifstream f(path);
            meta = json::parse(f);
        } catch (const json::exception & e) {
            throw Error(fmt::format("{}: not readable JSON: {} (remove it or use another --out)", path,
                                    json_error_text(e.what())));
        }
        if (!meta.is_object() || !meta.contains("tasks") || !meta["tasks"].is_object() ||
            !meta.value("model", json::object()).is_object())
            throw Error(
                fmt::format("{}: not an eval.json of routescope (remove it or use another --out)", path));
        if (meta.value("model", json::object()).value("sha256", "") != model.at("sha256"))
            throw Error(fmt::format("{} holds results of another model ({}); use another --out", out,
                                    meta["model"].value("path", "?")));
        if (meta.value("steer", json()) != steer)
            throw Error(
                fmt::format("{} holds results of another steering spec (or none); use another --out", out));
        if (meta["tasks"].contains(task) && meta["tasks"][task] != task_opts)
            throw Error(
                fmt::format("{} holds {} results with other settings ({} vs now {}); use another --out", out,
                            task, meta["tasks"][task].dump(), task_opts.dump()));
    } else {
        meta = {{"tool_version", ROUTESCOPE_VERSION},
                {"model", model},
                {"steer", steer},
                {"tasks", json::object()}};
    }
    meta["tasks"][task] = task_opts;
    return meta;
}

// Fixed units of work. llama.cpp's results depend slightly on which sequences share a decode (kernel
// choice by batch size, KV-cell placement), so a greedy generation can change with its neighbours. Each
// unit is therefore a fixed slice of one language's prompt list, [u·W, (u+1)·W) with W the sequences one
// decode takes: a unit is always decoded whole, from an empty KV cache, whatever is already done, so an
// interrupted and resumed run writes exactly what an uninterrupted one writes (issue #15, item 10).
struct WorkUnit {
    size_t begin = 0, end = 0;  // [begin, end) of the prompts, all of one language
};

std::vector<WorkUnit> work_units(std::span<const EvalPrompt> prompts, size_t width) {
    std::vector<WorkUnit> out;
    for (size_t b = 0; b < prompts.size();) {
        size_t e = b;
        while (e < prompts.size() && prompts[e].lang == prompts[b].lang) ++e;
        for (size_t u = b; u < e; u += width) out.push_back({u, std::min(e, u + width)});
        b = e;
    }
    return out;
}

}  // namespace

EvalCounts evaluate_prompts(Engine & engine, EvalTask task, std::span<const EvalPrompt> prompts,
                            const std::string & out_dir, const EvalLoopOptions & opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string task_name = eval_task_name(task);
    const std::string results_path = (fs::path(out_dir) / "results.csv").string();
    const auto previous = read_results(results_path);
    std::map<std::string, std::set<std::string>> done;  // lang -> item ids already scored
    for (const auto & p : prompts)
        if (!done.contains(p.lang)) done[p.lang] = done_item_ids(previous, task_name, p.lang, opt.steered);
    auto is_done = [&](const EvalPrompt & p) { return done[p.lang].contains(p.item_id); };

    EvalCounts c;
    c.n_items = (int64_t)prompts.size();
    c.n_skipped = std::count_if(prompts.begin(), prompts.end(), is_done);
    ResultsWriter results(results_path);
    DetailsFile details((fs::path(out_dir) / "details.jsonl").string());
    Progress progress(opt.label, c.n_items, opt.progress, "items");
    progress.set_first_done(c.n_skipped);
    auto finish = [&](const EvalPrompt & p, const std::string & pred, bool correct, json detail) {
        if (is_done(p)) return;  // decoded again only to keep its unit whole
        detail["task"] = task_name;
        detail["lang"] = p.lang;
        detail["item_id"] = p.item_id;
        detail["steered"] = opt.steered;
        details.append(detail);
        results.append({task_name, p.lang, p.item_id, p.gold, pred, correct, opt.steered});
        ++c.n_done;
        progress.update(c.n_skipped + c.n_done, c.n_tokens);
        if (opt.stop_after >= 0 && c.n_done >= opt.stop_after) throw StopRequested{};
    };

    const bool generates = eval_task_generates(task);
    const auto units = work_units(prompts, generates ? (size_t)engine.seqs_per_decode() : kMcChunk);
    try {
        for (const WorkUnit & u : units) {
            const auto items = prompts.subspan(u.begin, u.end - u.begin);
            if (std::all_of(items.begin(), items.end(), is_done)) continue;
            if (generates) {
                std::vector<std::vector<int32_t>> toks;
                for (const auto & p : items) {
                    toks.push_back(prompt_tokens(engine, opt.chat, p.prompt));
                    c.n_tokens += (int64_t)toks.back().size();
                }
                GenerateParams gp;
                gp.max_new_tokens = opt.max_new_tokens;
                gp.stops = items[0].stops;  // one language: its labels are the stop strings
                engine.generate(toks, gp, [&](size_t i, const Generation & g) {
                    const EvalPrompt & p = items[i];
                    c.n_tokens += g.n_tokens;
                    const MathScore s =
                        task == EvalTask::mgsm_direct
                            ? score_mgsm_flexible(p.gold, g.text, p.stops)  // lm-eval's filter
                            : score_math(p.gold, g.text, p.stops);
                    finish(p, s.pred, s.correct,
                           {{"generation", g.text}, {"n_tokens", g.n_tokens}, {"stop", stop_name(g.stop)}});
                });
                continue;
            }
            std::vector<McPlan> plans;
            std::vector<std::vector<int32_t>> seqs, positions;
            std::vector<size_t> first_seq;  // per item: index of its first sequence in seqs
            for (const auto & p : items) {
                plans.push_back(plan_mc(engine, opt.chat, p));
                first_seq.push_back(seqs.size());
                for (size_t s = 0; s < plans.back().seqs.size(); ++s) {
                    c.n_tokens += (int64_t)plans.back().seqs[s].size();
                    seqs.push_back(plans.back().seqs[s]);
                    positions.push_back(plans.back().positions[s]);
                }
            }
            const auto rows = engine.output_logits(seqs, positions);
            const size_t V = (size_t)engine.n_vocab();
            for (size_t i = 0; i < plans.size(); ++i) {
                std::vector<double> loglik;
                for (const auto & o : plans[i].options) {
                    const auto & r = rows[first_seq[i] + o.seq];
                    double ll = 0.0;  // log P(continuation | context) = Σ_j log p(token_j | prefix)
                    for (size_t j = 0; j < o.tokens.size(); ++j)
                        ll += log_softmax_at(std::span(r).subspan((o.row0 + j) * V, V), o.tokens[j]);
                    loglik.push_back(ll);
                }
                const EvalPrompt & p = items[i];
                const McScore s = score_mc(loglik, p.gold.empty() ? -1 : p.gold[0] - 'A');
                finish(p, mc_letter(s.pred), s.correct, {{"loglik", loglik}});
            }
        }
    } catch (const StopRequested &) {
        c.stopped = true;
    }
    progress.update(c.n_skipped + c.n_done, c.n_tokens, true);
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return c;
}

std::vector<SummaryRow> write_eval_summary(const std::string & out_dir) {
    const auto rows = read_results((fs::path(out_dir) / "results.csv").string());
    const auto summary = summarize_results(rows, BootstrapOptions{});
    write_summary((fs::path(out_dir) / "summary.csv").string(), summary);
    return summary;
}

EvalReport run_eval(const EvalJob & job) {
    if (job.out.empty()) throw Error("no output directory (--out)");
    if (job.n_shot < 0) throw Error("--shots must be ≥ 0");
    const EvalTask task = parse_eval_task(job.task);
    if (job.max_new_tokens < 1 && eval_task_generates(task))
        throw Error(fmt::format("--max-new-tokens {} must be at least 1 ({} generates its answers)",
                                job.max_new_tokens, job.task));
    std::vector<std::string> langs;
    for (const auto & l : job.langs) {
        const std::string code = flores_code(l);
        if (code.empty())
            throw Error(fmt::format("unknown language code '{}' (use FLoRes-200 codes such as deu_Latn)", l));
        if (std::find(langs.begin(), langs.end(), code) != langs.end())
            throw Error(fmt::format("--langs names {} twice (list each language once)", code));
        langs.push_back(code);
    }
    if (langs.empty()) langs = eval_task_languages(task, job.data);
    if (langs.empty()) throw Error(fmt::format("no {} data found for any language", job.task));

    // all prompts first: a missing data file fails before the model is loaded
    std::vector<EvalPrompt> prompts;
    for (const auto & l : langs) {
        auto p = eval_task_prompts(task, l, job.data, job.n_shot);
        if (job.limit >= 0 && (int64_t)p.size() > job.limit) p.resize((size_t)job.limit);
        prompts.insert(prompts.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
    }
    if (prompts.empty()) throw Error("no items to evaluate (--limit 0?)");

    const ModelInfo mi = inspect_model(job.model);
    SteerPlan plan;
    if (!job.steer.empty()) {
        plan = load_steer_plan(job.steer, mi);
        for (const auto & w : plan.warnings) std::fprintf(stderr, "routescope: warning: %s\n", w.c_str());
    }
    const bool steered = !plan.empty();
    const json model = {
        {"path", fs::absolute(job.model).string()}, {"sha256", model_sha256(job.model)}, {"arch", mi.arch}};
    // What changes a task's prompts or scores. Results depend slightly on which sequences decode together
    // (batch shape changes rounding), so the packing options are part of what a resumed run must share.
    json task_opts = {{"batch", job.n_batch}, {"ctx", job.n_ctx}, {"batch_seqs", job.n_seq_max}};
    if (job.chat_template != "none")
        task_opts["chat_template"] = job.chat_template;  // same model: same frame
    if (eval_task_generates(task)) {
        if (task == EvalTask::mgsm) task_opts["shots"] = job.n_shot;  // mgsm_direct is 0-shot
        task_opts["max_new_tokens"] = job.max_new_tokens;
    }
    const json meta =
        check_eval_dir(job.out, model, steered ? plan.to_json() : json(), eval_task_name(task), task_opts);

    EngineParams ep;
    ep.n_threads = job.n_threads;
    ep.n_batch = job.n_batch;
    ep.n_ctx = job.n_ctx;
    ep.n_seq_max = job.n_seq_max;
    ep.n_gpu_layers = job.n_gpu_layers;
    ep.rpc_servers = job.rpc_servers;
    ep.allow_unverified_arch = job.allow_unverified_arch;
    ep.tap = steered;  // unsteered: no eval callback at all (plain llama.cpp speed)
    Engine engine(job.model, ep);
    if (steered) engine.set_steering(std::move(plan));
    const ChatFrame chat = engine.chat_frame(job.chat_template);
    remove_stale_temporaries(job.out);  // e.g. an eval.json.tmp-PID of a killed run
    write_file_atomic((fs::path(job.out) / "eval.json").string(), meta.dump(2) + "\n");  // inputs are valid

    EvalLoopOptions lo;
    lo.max_new_tokens = job.max_new_tokens;
    lo.steered = steered;
    lo.progress = job.progress;
    lo.label = "eval " + eval_task_name(task);
    lo.stop_after = job.stop_after;
    lo.chat = chat;
    EvalReport rep;
    rep.counts = evaluate_prompts(engine, task, prompts, job.out, lo);
    rep.summary = write_eval_summary(job.out);
    return rep;
}

}  // namespace rs

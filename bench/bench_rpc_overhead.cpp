// Recording through llama.cpp's RPC backend (issue #10): tokens/s of plain decoding and of recording
// (decode + router tap) with every layer on an rpc-server on 127.0.0.1 vs on the local CPU backend, same
// model, corpus, batch and threads, repetitions interleaved, medians. Shows what non-host copies cost
// (each tapped router node is one device → host copy and one synchronisation) before a GPU run.
// Two recording rows per backend: the tap over the whole graph (record_stops_early = false), whose
// overhead over plain decoding is the copies' cost alone and is what issue #11's "RPC tap overhead within
// 2× the CPU's" compares, and the record as trace runs it (stopped after the last router, faster than
// plain decoding, so its "overhead" is negative and no cost of the tap).
// Not a test: prints numbers, asserts nothing about time. The rpc-server is started here and stopped
// at exit (it also ends by itself after 10 minutes).
//
// usage: bench_rpc_overhead [--layers 8] [--experts 32] [--top-k 4] [--embd 128] [--groups 20] [--reps 3]
//                           [--batch 1024]
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/make_model.h"

namespace fs = std::filesystem;

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static bool port_open(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    const bool ok = connect(fd, (sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int main(int argc, char ** argv) {
    int layers = 8, experts = 32, top_k = 4, embd = 128, groups = 20, reps = 3, threads = 2, port = 50731,
        batch = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const int v = std::atoi(argv[i + 1]);
        if (a == "--layers") layers = v;
        if (a == "--experts") experts = v;
        if (a == "--top-k") top_k = v;
        if (a == "--embd") embd = v;
        if (a == "--groups") groups = v;
        if (a == "--reps") reps = v;
        if (a == "--threads") threads = v;
        if (a == "--port") port = v;
        if (a == "--batch") batch = v;
    }
    if (std::string(RS_RPC_SERVER).empty()) {
        std::printf("llama.cpp was built without rpc-server: nothing to measure\n");
        return 0;
    }
    const pid_t server = fork();
    if (server == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        const std::string p = std::to_string(port), t = std::to_string(threads);
        execlp("timeout", "timeout", "600", RS_RPC_SERVER, "-H", "127.0.0.1", "-p", p.c_str(), "-t",
               t.c_str(), (char *)nullptr);
        _exit(127);
    }
    for (int i = 0; i < 200 && !port_open(port); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const fs::path dir = fs::temp_directory_path() / "rs_bench_rpc";
    fs::create_directories(dir);
    rs::MakeModelParams mp;
    mp.arch = "olmoe";
    mp.n_layer = layers, mp.n_expert = experts, mp.top_k = top_k, mp.n_embd = embd, mp.n_ff = embd;
    const std::string model = (dir / "bench.gguf").string();
    rs::make_model(mp, model);

    rs::EngineParams ep;
    ep.n_threads = threads;
    ep.n_batch = batch;
    auto make = [&](bool tap, bool rpc, bool stop_early = true) {
        rs::EngineParams e = ep;
        e.tap = tap;
        e.record_stops_early = stop_early;
        if (rpc) e.rpc_servers = {"127.0.0.1:" + std::to_string(port)}, e.n_gpu_layers = 999;
        return std::make_unique<rs::Engine>(model, e);
    };
    auto cpu_plain = make(false, false), cpu_whole = make(true, false, false), cpu_tap = make(true, false);
    auto rpc_plain = make(false, true), rpc_whole = make(true, true, false), rpc_tap = make(true, true);
    const auto c = rs::load_corpus("flores:" + std::string(RS_SOURCE_DIR) + "/data/flores200/devtest",
                                   {{"eng_Latn", "deu_Latn", "zho_Hans", "swh_Latn"}, groups});
    std::vector<std::vector<int32_t>> toks;
    int64_t n_tok = 0;
    for (const auto & s : c.seqs) {
        toks.push_back(cpu_plain->tokenize(s.text, 256));
        n_tok += (int64_t)toks.back().size();
    }
    auto timed = [](auto && f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    std::vector<double> a, b, g, x, y, h;
    cpu_plain->decode(toks), rpc_plain->decode(toks);  // warm up once
    for (int r = 0; r < reps; ++r) {
        a.push_back(timed([&] { cpu_plain->decode(toks); }));
        g.push_back(timed([&] { cpu_whole->record(toks); }));
        b.push_back(timed([&] { cpu_tap->record(toks); }));
        x.push_back(timed([&] { rpc_plain->decode(toks); }));
        h.push_back(timed([&] { rpc_whole->record(toks); }));
        y.push_back(timed([&] { rpc_tap->record(toks); }));
    }
    const double cp = median(a), cg = median(g), ct = median(b), rp = median(x), rg = median(h),
                 rt = median(y);
    std::printf(
        "model: olmoe, %d layers, %d experts, top-%d, embd %d; %lld FLoRes tokens; %d threads; medians "
        "of %d interleaved runs\n",
        layers, experts, top_k, embd, (long long)n_tok, threads, reps);
    for (const auto & [name, plain, whole, rec] :
         {std::tuple{"CPU", cp, cg, ct}, std::tuple{"RPC", rp, rg, rt}})
        std::printf(
            "%s  plain %9.0f tok/s   tap, whole graph %9.0f tok/s (overhead %+.1f%%)   record as trace "
            "%9.0f tok/s\n",
            name, n_tok / plain, n_tok / whole, (whole / plain - 1) * 100, n_tok / rec);
    std::printf("RPC / CPU: plain %.3f, tap whole graph %.3f, record %.3f\n", cp / rp, cg / rg, ct / rt);
    if (cg / cp - 1 > 0.005)  // a ratio of overheads means nothing when the CPU's is within noise
        std::printf("RPC tap overhead / CPU tap overhead: %.2f\n", (rg / rp - 1) / (cg / cp - 1));
    else
        std::printf(
            "RPC tap overhead / CPU tap overhead: n/a (the CPU tap overhead, %+.1f%%, is within noise)\n",
            (cg / cp - 1) * 100);
    cpu_plain.reset(), cpu_whole.reset(), cpu_tap.reset(), rpc_plain.reset(), rpc_whole.reset(),
        rpc_tap.reset();
    kill(server, SIGTERM);
    waitpid(server, nullptr, 0);
    fs::remove_all(dir);
    return 0;
}

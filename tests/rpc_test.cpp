// Router tensors in non-host memory: the model's layers offloaded to llama.cpp's RPC backend
// (an rpc-server on 127.0.0.1, started and stopped by the test), which is the code path a GPU takes
// (ggml_backend_tensor_get/set instead of host pointers, scheduler copies between backends).
// Recording, steering and the tap's invisibility must hold exactly as on the CPU.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/steer.h"
#include "test_util.h"

// llama.cpp's RPC client keeps its server registry and buffer types in function-local statics for the
// life of the process (ggml-rpc.cpp: ggml_backend_rpc_add_server, ggml_backend_rpc_buffer_type), which
// LeakSanitizer reports at exit. They are not routescope's: suppressed by name, with full stacks (the
// slow unwinder, since ggml is built without frame pointers) so that every block they own matches.
extern "C" const char * __lsan_default_suppressions() {
    return "leak:ggml_backend_rpc_add_server\nleak:ggml_backend_rpc_buffer_type\n";
}
extern "C" const char * __asan_default_options() {
    return "fast_unwind_on_malloc=0";
}

namespace {

using rs::test::tiny_model;

// A free TCP port on 127.0.0.1 (bound to port 0, then released).
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    EXPECT_EQ(bind(fd, (sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (sockaddr *)&a, &n);
    close(fd);
    return ntohs(a.sin_port);
}

bool port_open(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    const bool ok = connect(fd, (sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

// rpc-server on 127.0.0.1 for the whole test binary; `timeout` ends it even if this process dies.
class RpcServer : public testing::Environment {
  public:
    static inline std::string endpoint;
    void SetUp() override {
        if (std::string(RS_RPC_SERVER).empty()) return;
        const int port = free_port();
        pid_ = fork();
        if (pid_ == 0) {
            freopen("/dev/null", "w", stdout);  // it logs every connection
            const std::string p = std::to_string(port);
            execlp("timeout", "timeout", "600", RS_RPC_SERVER, "-H", "127.0.0.1", "-p", p.c_str(), "-t", "1",
                   (char *)nullptr);
            _exit(127);
        }
        for (int i = 0; i < 200 && !port_open(port); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (port_open(port)) endpoint = fmt::format("127.0.0.1:{}", port);
    }
    void TearDown() override {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            waitpid(pid_, nullptr, 0);
        }
    }

  private:
    pid_t pid_ = -1;
};

const auto * const kEnv = testing::AddGlobalTestEnvironment(new RpcServer);

std::unique_ptr<rs::Engine> engine(const std::string & arch, int gpu_layers, bool tap = true) {
    rs::EngineParams ep;
    ep.n_threads = 1;
    ep.n_batch = 1024;
    ep.tap = tap;
    if (gpu_layers > 0) {
        ep.rpc_servers = {RpcServer::endpoint};
        ep.n_gpu_layers = gpu_layers;
    }
    return std::make_unique<rs::Engine>(tiny_model(arch), ep);
}

std::vector<std::vector<int32_t>> tokens(const rs::Engine & e) {
    const auto c = rs::load_corpus(rs::test::flores_devtest(), {{"eng_Latn", "zho_Hans", "swh_Latn"}, 3});
    std::vector<std::vector<int32_t>> out;
    for (const auto & s : c.seqs) out.push_back(e.tokenize(s.text, 64));
    return out;
}

class RpcArch : public testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        if (std::string(RS_RPC_SERVER).empty()) GTEST_SKIP() << "llama.cpp was built without rpc-server";
        ASSERT_FALSE(RpcServer::endpoint.empty()) << "rpc-server did not start on 127.0.0.1";
    }
};

// All layers and half of them offloaded: the recorded logits and ids are bit-identical to the CPU's.
TEST_P(RpcArch, RecordsExactlyAsOnTheCpu) {
    auto cpu = engine(GetParam(), 0);
    const auto toks = tokens(*cpu);
    const auto want = cpu->record(toks);
    for (int ngl : {99, 3}) {
        auto off = engine(GetParam(), ngl);
        const auto got = off->record(toks);
        ASSERT_EQ(got.size(), want.size());
        for (size_t s = 0; s < got.size(); ++s) {
            EXPECT_EQ(got[s].topk, want[s].topk) << "ngl " << ngl << " sequence " << s;
            ASSERT_EQ(got[s].logits.size(), want[s].logits.size());
            EXPECT_EQ(0, std::memcmp(got[s].logits.data(), want[s].logits.data(),
                                     got[s].logits.size() * sizeof(float)))
                << "ngl " << ngl << " sequence " << s;
        }
    }
}

// Reading router nodes off the device does not change the model's outputs.
TEST_P(RpcArch, TapLeavesOutputBitIdentical) {
    auto tapped = engine(GetParam(), 99);
    auto plain = engine(GetParam(), 99, /*tap*/ false);
    const auto toks = tokens(*plain);
    const auto a = tapped->output_logits(toks, {}, /*record_routing*/ true);
    const auto b = plain->output_logits(toks);
    for (size_t s = 0; s < a.size(); ++s) {
        ASSERT_EQ(a[s].size(), b[s].size());
        EXPECT_EQ(0, std::memcmp(a[s].data(), b[s].data(), a[s].size() * sizeof(float))) << "sequence " << s;
    }
}

// Steering writes back into device memory: a forced expert is selected for every token, a suppressed
// one never, and the steered routing equals the CPU's.
TEST_P(RpcArch, SteeringWritesBackToTheDevice) {
    auto cpu = engine(GetParam(), 0);
    auto off = engine(GetParam(), 99);
    const auto & mi = off->info();
    const int L = (int)mi.moe_layers.size(), K = mi.top_k;
    const auto toks = tokens(*off);
    for (const char * method : {"force", "suppress"}) {
        const auto spec = nlohmann::json::parse(
            fmt::format(R"({{"seed": 1, "rules": [{{"layers": "{}:{}", "experts": [5], "method": "{}"}}]}})",
                        mi.moe_layers[1], mi.moe_layers.back(), method));
        off->set_steering(rs::steer_plan_from_json(spec, mi, "."));
        cpu->set_steering(rs::steer_plan_from_json(spec, cpu->info(), "."));
        const auto got = off->record(toks);
        const auto want = cpu->record(toks);
        for (size_t s = 0; s < got.size(); ++s) {
            EXPECT_EQ(got[s].topk, want[s].topk) << method << " sequence " << s;
            for (size_t t = 0; t < toks[s].size(); ++t)
                for (int l = 1; l < L; ++l) {
                    const int16_t * ids = &got[s].topk[(t * L + l) * K];
                    const bool has = std::find(ids, ids + K, 5) != ids + K;
                    ASSERT_EQ(has, std::string(method) == "force")
                        << method << " token " << t << " slot " << l;
                }
        }
    }
}

// plain router (qwen3moe), router bias on an ADD (gpt-oss), selection bias + groups + shared expert
// (deepseek2)
INSTANTIATE_TEST_SUITE_P(Offloaded, RpcArch, testing::Values("qwen3moe", "gpt-oss", "deepseek2"),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

TEST(Rpc, UnreachableServerIsAOneLineError) {
    rs::EngineParams ep;
    ep.rpc_servers = {"127.0.0.1:1"};
    ep.n_gpu_layers = 99;
    try {
        rs::Engine e(tiny_model("qwen3moe"), ep);
        FAIL() << "expected an error";
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("no rpc-server answers"), std::string::npos) << e.what();
    }
    ep.rpc_servers = {"no-port"};
    EXPECT_THROW(rs::Engine(tiny_model("qwen3moe"), ep), rs::Error);
}

}  // namespace

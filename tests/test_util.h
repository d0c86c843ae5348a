// Helpers for end-to-end tests: temp dirs, tiny generated models, running the routescope binary.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "routescope/make_model.h"

namespace rs::test {

namespace fs = std::filesystem;

inline fs::path temp_dir(const std::string & name) {
    const fs::path d = fs::path(testing::TempDir()) / ("rs_e2e_" + name);
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

inline std::string data_dir() {
    return std::string(RS_SOURCE_DIR) + "/data";
}
inline std::string flores_devtest() {
    return "flores:" + data_dir() + "/flores200/devtest";
}
inline std::string routescope_bin() {
    return std::string(RS_BINARY_DIR) + "/src/cli/routescope";
}

// A tiny model of `arch`, generated once per test binary run into the temp dir.
inline std::string tiny_model(const std::string & arch, int n_layer = 4, int n_expert = 8, int top_k = 2) {
    const fs::path p =
        fs::path(testing::TempDir()) / ("rs_tiny_" + arch + "_" + std::to_string(n_layer) + "_" +
                                        std::to_string(n_expert) + "_" + std::to_string(top_k) + ".gguf");
    if (!fs::exists(p)) {
        rs::MakeModelParams mp;
        mp.arch = arch;
        mp.n_layer = n_layer;
        mp.n_expert = n_expert;
        mp.top_k = top_k;
        mp.stdev = 0.1f;  // well-conditioned like a trained model; 0.2 makes tiny models chaotic
        rs::make_model(mp, p.string());
    }
    return p.string();
}

struct CliResult {
    int exit_code = -1;  // -1: killed by a signal
    std::string out, err;
};

inline std::string slurp(const fs::path & p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Runs `routescope ARGS` through the shell; ARGS must already be quoted where needed.
inline CliResult run_cli(const std::string & args) {
    static int n = 0;
    const fs::path errf =
        fs::path(testing::TempDir()) / ("rs_cli_err_" + std::to_string(getpid()) + "_" + std::to_string(n++));
    const std::string cmd = routescope_bin() + " " + args + " 2>" + errf.string();
    CliResult r;
    FILE * p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, k);
    const int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = slurp(errf);
    fs::remove(errf);
    return r;
}

// A bad-input run: exit code 1 (not a crash), one line on stderr starting with "routescope: ", never a
// raw library exception text (issue #15).
inline void expect_clean_error(const CliResult & r, const std::string & needle) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("routescope: ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find("json.exception"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

}  // namespace rs::test

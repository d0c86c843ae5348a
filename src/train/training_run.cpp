// training_run.h: checkpoint directories, the memory check and the progress line of train and finetune.
#include "training_run.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "routescope/file_io.h"

namespace fs = std::filesystem;

namespace rs {

fs::path latest_checkpoint(const fs::path & root) {
    std::ifstream lf(root / "latest");
    std::string name;
    if (!(lf >> name)) return {};
    return root / name;
}

void commit_checkpoint(const fs::path & root, int64_t step,
                       const std::function<void(const fs::path &)> & fill) {
    const std::string name = fmt::format("ckpt-{:06d}", step);
    const fs::path d = root / name, tmp = root / (name + ".tmp");
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    fill(tmp);
    fs::remove_all(d);
    fs::rename(tmp, d);
    const fs::path prev = latest_checkpoint(root);
    write_file_atomic((root / "latest").string(), name + "\n");
    if (!prev.empty() && prev != d) fs::remove_all(prev);
}

double activation_bytes(const MoeModelConfig & c, int batch, int seq) {
    const double tokens = (double)batch * seq;
    const double per_block = 20.0 * c.n_embd + 3.0 * seq * c.n_head + 4.0 * c.n_expert +
                             c.top_k * (4.0 * c.n_ff_exp + 3.0 * c.n_embd);
    return 4.0 * 2.0 * tokens * (c.n_layer * per_block + 3.0 * c.n_vocab);
}

double available_memory_bytes() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    double kb = 0;
    while (f >> key >> kb) {
        if (key == "MemAvailable:") return kb * 1024.0;
        f.ignore(256, '\n');
    }
    return (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
}

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled), tty_(isatty(fileno(stderr)) != 0) {}

void ProgressLine::update(const std::string & line, bool important, double elapsed_s) {
    if (!enabled_) return;
    if (tty_) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        if (important) std::fputc('\n', stderr);
    } else if (important || first_ || elapsed_s - last_line_at_ >= 30) {
        std::fprintf(stderr, "%s\n", line.c_str());
        last_line_at_ = elapsed_s;
    }
    first_ = false;
}

}  // namespace rs

// A progress line for long jobs: items, tokens/s and ETA. On a terminal it redraws one line;
// otherwise (CI, logs) it prints a line at most every 10 s. Silent when disabled.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace rs {

class Progress {
  public:
    Progress(std::string label, int64_t total, bool enabled, std::string unit = "seqs")
        : label_(std::move(label)),
          unit_(std::move(unit)),
          total_(total),
          enabled_(enabled),
          tty_(isatty(fileno(stderr)) != 0) {}

    // done: items finished so far (of total); tokens: tokens processed in this run.
    void update(int64_t done, int64_t tokens, bool final = false) {
        if (!enabled_) return;
        const auto now = clock::now();
        const double since_print = std::chrono::duration<double>(now - last_).count();
        if (!final && since_print < (tty_ ? 0.25 : 10.0)) return;
        last_ = now;
        const double el = std::chrono::duration<double>(now - start_).count();
        const double tps = el > 0 ? (double)tokens / el : 0.0;
        const int64_t done_run = done - first_done_;
        const double eta = done_run > 0 ? el * (double)(total_ - done) / (double)done_run : 0.0;
        std::fprintf(stderr, "%s%s: %lld/%lld %s | %lld tok | %.0f tok/s | elapsed %s | ETA %s%s",
                     tty_ ? "\r\033[K" : "", label_.c_str(), (long long)done, (long long)total_,
                     unit_.c_str(), (long long)tokens, tps, fmt_time(el).c_str(),
                     done_run > 0 ? fmt_time(eta).c_str() : "?", tty_ && !final ? "" : "\n");
        std::fflush(stderr);
    }
    void set_first_done(int64_t d) { first_done_ = d; }  // items skipped on --resume do not count for ETA

  private:
    using clock = std::chrono::steady_clock;
    static std::string fmt_time(double s) {
        const auto t = (long long)s;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
        return buf;
    }
    std::string label_, unit_;
    int64_t total_;
    bool enabled_, tty_;
    int64_t first_done_ = 0;
    clock::time_point start_ = clock::now(), last_ = clock::time_point{};
};

}  // namespace rs

// SteerMoE risk difference and expert selection (steermoe.h) as github.com/JACKPURCELL/SteerMoE @ 0986afb7
// (a fork of adobe-research/SteerMoE), custom_steering.ipynb calc_risk_diff and src/utils.py steer_moe.
#include "routescope/steermoe.h"

#include <algorithm>
#include <cmath>

#include "routescope/common.h"

namespace rs {

std::vector<double> steermoe_risk_difference(std::span<const int64_t> count_a, int64_t n_a,
                                             std::span<const int64_t> count_b, int64_t n_b) {
    RS_ASSERT(count_a.size() == count_b.size() && n_a > 0 && n_b > 0);
    std::vector<double> rd(count_a.size());
    // risk_diff = a1/(a1 + d1) − a2/(a2 + d2); a + d is the side's token count (every token counts the
    // expert as activated or deactivated once per layer)
    for (size_t e = 0; e < rd.size(); ++e)
        rd[e] = (double)count_a[e] / (double)n_a - (double)count_b[e] / (double)n_b;
    return rd;
}

SteerMoeSelection steermoe_select(std::span<const std::vector<double>> rd_per_layer,
                                  const SteerMoeOptions & opt) {
    RS_ASSERT(opt.n_activate >= 0 && opt.n_deactivate >= 0);
    SteerMoeSelection out;
    for (size_t l = 0; l < rd_per_layer.size(); ++l)
        for (size_t e = 0; e < rd_per_layer[l].size(); ++e) {
            const double v = opt.reverse ? -rd_per_layer[l][e] : rd_per_layer[l][e];
            out.ranking.push_back({(int)l, (int)e, v});
            out.n_positive += v > 0.0;
            out.n_negative += v < 0.0;
        }
    // sort_values(by="risk_diff_abs", ascending=False); ties by (layer, expert) for determinism
    std::stable_sort(out.ranking.begin(), out.ranking.end(),
                     [](const SteerMoeExpert & x, const SteerMoeExpert & y) {
                         return std::fabs(x.risk_difference) > std::fabs(y.risk_difference);
                     });
    std::vector<int> n_active(rd_per_layer.size(), 0);
    int n_pos = 0, n_neg = 0;
    for (const auto & x : out.ranking) {
        // pos = df[rd > 0].head(num_pos), neg = df[rd < 0].head(num_neg); RD = 0 is never steered
        if (x.risk_difference > 0.0 && n_pos < opt.n_activate) {
            ++n_pos;
            // set_moe: activate only while the layer has fewer than num_experts_per_tok activated
            if (opt.top_k > 0 && n_active[(size_t)x.layer] >= opt.top_k) {
                ++out.n_dropped_by_cap;
                continue;
            }
            ++n_active[(size_t)x.layer];
            out.activate.push_back(x);
        } else if (x.risk_difference < 0.0 && n_neg < opt.n_deactivate) {
            ++n_neg;
            out.deactivate.push_back(x);
        }
    }
    return out;
}

}  // namespace rs

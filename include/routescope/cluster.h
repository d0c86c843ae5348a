// Agglomerative hierarchical clustering with average linkage (UPGMA) of a small distance matrix, e.g.
// languages by their routing divergence (Chen et al. 2026: "routing aligns with linguistic families").
//
// Output follows scipy.cluster.hierarchy.linkage: leaves are clusters 0..n−1, merge i creates cluster
// n+i; each merge lists the two clusters joined (a < b), their distance and the size of the new cluster.
// Ties (equal distances) are broken by the smallest (a, b) pair, so the result is deterministic.
// Limits: O(n³) time, O(n²) memory — meant for tens to a few hundred items, not for large data.
// Implemented in src/metrics/divergence_structure.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace rs {

struct Merge {
    int a = 0;              // cluster id (leaf < n, or n + index of an earlier merge)
    int b = 0;              // cluster id, a < b
    double distance = 0.0;  // average linkage distance between a and b when merged
    int size = 0;           // leaves in the merged cluster
};

// dist: [n × n] symmetric, finite, non-negative (only the upper triangle is read). n − 1 merges;
// empty for n ≤ 1. Average linkage: d(u∪v, w) = (|u|·d(u,w) + |v|·d(v,w)) / (|u| + |v|).
std::vector<Merge> average_linkage(std::span<const double> dist, int n);

// Leaf order for a dendrogram: depth-first from the last merge, a-side before b-side (as scipy's
// dendrogram(..., no plot) lists leaves). n leaves; {0} for n == 1, empty for n == 0.
std::vector<int> dendrogram_leaf_order(std::span<const Merge> merges, int n);

// Flat clustering: cut the tree into k clusters (1 ≤ k ≤ n); label per leaf, numbered 0.. in order of each
// cluster's smallest leaf.
std::vector<int> cut_tree(std::span<const Merge> merges, int n, int k);

}  // namespace rs

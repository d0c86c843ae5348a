// IEEE 754 binary16 ↔ binary32 (round to nearest even), so neither the trace store nor the metrics
// need ggml: the store writes p as f16, the analysis widens it back (exactly).
#pragma once

#include <bit>
#include <cstdint>

namespace rs {

// binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
inline uint16_t f32_to_f16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));  // inf/nan
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: overflow to inf
    if (ax < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
        // value = ax as float; half subnormal unit is 2^-24. Round to nearest even via float add trick.
        const float v = std::bit_cast<float>(ax) + 0.5f;  // 0.5 = 2^-1: the ulp at 0.5 is 2^-24
        return (uint16_t)(sign | (std::bit_cast<uint32_t>(v) - 0x3f000000u));
    }
    // normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even
    const uint32_t odd = (ax >> 13) & 1u;
    const uint32_t r = ax + 0xc8000fffu + odd;  // 0xc8000000 = -(112 << 23) rebias, 0xfff = half ulp - 1
    return (uint16_t)(sign | (r >> 13));
}

inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0) {  // zero / subnormal: man · 2^-24
        const float v = (float)man * 0x1p-24f;
        return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | sign);
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
    return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

}  // namespace rs

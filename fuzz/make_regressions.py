#!/usr/bin/env python3
"""Writes the hand-made regression inputs of tests/fuzz/ (issue #15's crashing and accepted-garbage inputs).

Each file is an input that once crashed routescope or was accepted although invalid; rs_fuzz runs every
file in tests/fuzz/<target>/ as is before its mutants. Shards match rs_fuzz's seed manifest: 3 sequences,
2 MoE layers, 4 experts, top-2, f16 probabilities. Run from the repository root: python3 fuzz/make_regressions.py
"""
import json
import math
import os
import struct


def safetensors(tensors, metadata=None, raw_header=None, odd=False):
    header, data, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(payload)]}
        data += payload
        off += len(payload)
    h = (raw_header if raw_header is not None else json.dumps(header)).encode()
    h += b" " * ((8 - len(h) % 8) % 8 + (1 if odd else 0))  # odd: every tensor starts misaligned
    return struct.pack("<Q", len(h)) + h + data


def f16(values):
    return b"".join(struct.pack("<e", v) for v in values)


def shard(probs=None, offsets=(0, 2, 3, 3), index=(0, 1, 2), topk=None, lang=(0, 1, 0), odd=False):
    T, L, E, K = offsets[-1], 2, 4, 2
    probs = probs if probs is not None else [0.25] * (T * L * E)
    topk = topk if topk is not None else [0, 1] * (T * L)
    meta = {"format": "routescope-trace", "version": "1", "seq_ids": json.dumps(["a", "b", "c"])}
    return safetensors([
        ("seq_index", "I64", [3], struct.pack("<3q", *index)),
        ("seq_group", "I64", [3], struct.pack("<3q", 0, 0, -1)),
        ("seq_lang", "I32", [3], struct.pack("<3i", *lang)),
        ("seq_domain", "I32", [3], struct.pack("<3i", 0, 0, 0)),
        ("seq_offset", "I64", [4], struct.pack("<4q", *offsets)),
        ("tokens", "I32", [T], struct.pack(f"<{T}i", *range(T))),
        ("probs", "F16", [T, L, E], f16(probs)),
        ("topk", "I16", [T, L, K], struct.pack(f"<{T * L * K}h", *topk)),
    ], meta, odd=odd)


def put(target, name, data):
    d = os.path.join("tests", "fuzz", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# 1. data_offsets with fewer than 2 entries (out-of-bounds read), and other header shapes
put("safetensors", "offsets-one-entry", safetensors([], raw_header='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}') + b"\0" * 4)
put("safetensors", "offsets-empty", safetensors([], raw_header='{"a":{"dtype":"F32","shape":[1],"data_offsets":[]}}') + b"\0" * 4)
put("safetensors", "shape-overflow", safetensors([], raw_header='{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,0]}}'))
put("safetensors", "metadata-not-strings", safetensors([], raw_header='{"__metadata__":{"a":1}}'))
put("safetensors", "header-length-huge", struct.pack("<Q", 2**63) + b"{}")
put("shard", "offsets-one-entry", safetensors([], raw_header='{"seq_index":{"dtype":"I64","shape":[3],"data_offsets":[0]}}') + b"\0" * 24)
# 3. non-finite / negative probabilities, negative seq_offset[0]
p = [0.25] * 24
p[5] = math.nan
put("shard", "nan-prob", shard(probs=p))
p = [0.25] * 24
p[0] = -0.5
put("shard", "negative-prob", shard(probs=p))
p = [0.25] * 24
p[7] = math.inf
put("shard", "inf-prob", shard(probs=p))
put("shard", "negative-seq-offset", shard(offsets=(-1, 2, 3, 3)))
put("shard", "decreasing-seq-offset", shard(offsets=(0, 3, 2, 3)))
put("shard", "seq-offset-int64-min", shard(offsets=(0, 2, -2**63, 3)))  # UBSan: INT64_MIN - 2 (rs_fuzz)
put("shard", "expert-id-out-of-range", shard(topk=[0, 4] * 6))
put("shard", "negative-expert-id", shard(topk=[-1, 0] * 6))
put("shard", "wrong-corpus-position", shard(index=(0, 1, 7)))
put("shard", "language-out-of-range", shard(lang=(0, 2, 0)))
put("shard", "misaligned-tensors", shard(odd=True))  # valid; f16 reads used to be misaligned (UBSan)

# 8. manifest meaning
base = {"format": "routescope-trace", "version": 1, "tool_version": "0.1.0",
        "model": {"path": "/m/q.gguf", "sha256": "a" * 64, "arch": "qwen3moe", "name": "t", "n_layer": 3,
                  "moe_layers": [0, 2], "n_expert": 4, "top_k": 2, "gating": "softmax"},
        "corpus": {"spec": "tsv:x.tsv", "langs": ["eng_Latn", "deu_Latn"], "domains": ["flores"], "n_sequences": 3},
        "store": {"seqs_per_shard": 3, "probs_dtype": "f16", "has_logits": False}, "options": {}}


def manifest(name, edit):
    j = json.loads(json.dumps(base))
    edit(j)
    put("manifest", name, json.dumps(j))


manifest("n-layer-fractional", lambda j: j["model"].update(n_layer=3.5))
manifest("moe-layers-repeated", lambda j: j["model"].update(moe_layers=[2, 2]))
manifest("moe-layers-descending", lambda j: j["model"].update(moe_layers=[2, 0]))
manifest("n-expert-wraps", lambda j: j["model"].update(n_expert=4294967300))
manifest("langs-twice", lambda j: j["corpus"].update(langs=["eng_Latn", "eng_Latn"]))
manifest("n-sequences-negative", lambda j: j["corpus"].update(n_sequences=-1))
manifest("model-not-object", lambda j: j.update(model=[1]))
manifest("shard-sha-bad-key", lambda j: j["store"].update(shard_sha256={"x": "0" * 64}))

# 6. and 12. steering specs
put("steer", "lambda-1e300", '{"rules": [{"layers": "all", "experts": [0], "method": "soft", "lambda": 1e300}]}')
put("steer", "expert-wraps", '{"rules": [{"layers": 1, "experts": [4294967299], "method": "force"}]}')
put("steer", "layer-wraps", '{"rules": [{"layers": 4294967297, "experts": [1], "method": "force"}]}')
put("steer", "margin-typo", '{"rules": [{"layers": 1, "experts": [1], "method": "suppress", "margni": 3}]}')
put("steer", "seed-negative", '{"seed": -1, "rules": [{"layers": 1, "experts": [1], "method": "force"}]}')
put("steer", "lambda-string", '{"rules": [{"layers": 1, "experts": [1], "method": "soft", "lambda": "0.5"}]}')
put("steer", "set-not-string", '{"experts_file": "experts.json", "rules": [{"layers": 1, "set": 3, "method": "force"}]}')
put("steer", "number-overflow", '{"rules": [{"layers": 1, "experts": [1e999], "method": "force"}]}')
put("experts", "sets-list", '{"sets": [1, 2]}')
put("experts", "set-ids-strings", '{"sets": {"multilingual": {"1": ["a"]}}}')
put("experts", "set-not-object", '{"sets": {"multilingual": 3}}')

# 12. and 13. corpora and --scores
put("tsv", "bad-utf8-id", b"id\tlang\tdomain\ttext\na\xff\teng_Latn\tweb\thello\n")
put("tsv", "bad-utf8-lang", b"id\tlang\tdomain\ttext\na\teng\xc0\xafLatn\tweb\thello\n")
put("tsv", "group-overflow", "id\tlang\ttext\tgroup\na\teng_Latn\tx\t99999999999999999999\n")
put("jsonl", "bad-utf8-id", b'{"id": "a\xff", "lang": "eng_Latn", "text": "x"}\n')
put("jsonl", "group-float", '{"id": "a", "lang": "eng_Latn", "text": "x", "group": 1.5}\n')
put("scores", "trailing-garbage", "lang\tscore\ndeu_Latn\t0.3xyz\n")
put("scores", "empty", "")
put("scores", "no-header", "deu_Latn\t0.3\nfra_Latn\t0.4\n")
put("scores", "duplicate", "lang\tscore\ndeu_Latn\t0.3\ndeu_Latn\t0.4\n")
put("scores", "nan", "lang\tscore\ndeu_Latn\tnan\n")

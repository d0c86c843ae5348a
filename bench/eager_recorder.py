#!/usr/bin/env python3
"""The peer of `routescope trace` in bench/bench_eager_vs_trace.sh: how researchers record MoE routing
today with HF transformers — a PyTorch-eager forward pass with forward hooks on the routers, forward only,
padded length-sorted batches (or one sequence at a time) — on the same GGUF weights and the same token ids.

Not part of routescope (benchmark peer only; Debian's python3-torch and numpy). The model is the Qwen3-MoE
block of transformers' modeling_qwen3_moe.py (RMSNorm, q/k-norm, NeoX RoPE, eager attention with the causal
+ padding mask, softmax top-k routing with renormalised weights, experts looped with index_add as
Qwen3MoeSparseMoeBlock does), f32 on the CPU as HF loads it there. The hook stores what a trace stores:
per token and layer the router's softmax (f16) and the top-k ids, padding removed.

usage: eager_recorder.py MODEL.gguf TRACE_DIR --threads N [--batch B] [--single]
prints one JSON line: tokens, seconds (forward + hooks), load_seconds, tok_per_s
"""
import argparse
import glob
import json
import struct
import time

import numpy as np
import torch

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """GGUF v3 (ggml/docs/gguf.md): header, key-values, tensor infos, aligned data. f32/f16 tensors only."""
    buf = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        s = buf[pos : pos + n].decode("utf-8", "replace")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(GGUF_SCALARS[t])

    assert buf[:4] == b"GGUF", path
    pos = 4
    take("<I")  # version
    n_tensors, n_kv = take("<Q"), take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("<I")
        ne = [take("<Q") for _ in range(nd)]
        typ, off = take("<I"), take("<Q")
        infos.append((name, ne, typ, off))
    align = kv.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        dt = {0: np.float32, 1: np.float16}.get(typ)
        if dt is None:
            raise SystemExit(f"{path}: tensor {name} has ggml type {typ}; the peer reads f32/f16 models only")
        n = int(np.prod(ne))
        a = np.frombuffer(buf, dtype=dt, count=n, offset=data + off).astype(np.float32)
        tensors[name] = torch.from_numpy(a.reshape(list(reversed(ne))).copy())
    return kv, tensors


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Router(torch.nn.Linear):
    """The gate Linear that HF hooks attach to (Qwen3MoeSparseMoeBlock.gate)."""


class Model:
    def __init__(self, kv, w):
        a = "qwen3moe."
        self.L = kv[a + "block_count"]
        self.H = kv[a + "attention.head_count"]
        self.Hkv = kv.get(a + "attention.head_count_kv", self.H)
        self.D = kv.get(a + "attention.key_length", kv[a + "embedding_length"] // self.H)
        self.k = kv[a + "expert_used_count"]
        self.E = kv[a + "expert_count"]
        self.eps = kv.get(a + "attention.layer_norm_rms_epsilon", 1e-6)
        self.base = kv.get(a + "rope.freq_base", 10000.0)
        self.w = w
        self.routers = []
        for il in range(self.L):
            r = Router(w["token_embd.weight"].shape[1], self.E, bias=False)
            r.weight = torch.nn.Parameter(w[f"blk.{il}.ffn_gate_inp.weight"], requires_grad=False)
            self.routers.append(r)

    def rope(self, x):  # x [B, H, T, D], NeoX halves
        T, D = x.shape[2], x.shape[3]
        inv = self.base ** (-torch.arange(0, D // 2, dtype=torch.float64) * 2.0 / D)
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv).float()
        cos, sin = ang.cos(), ang.sin()
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)

    def forward(self, tok, mask):  # tok [B, T], mask [B, T] bool (real tokens); right padding
        w, B, T = self.w, tok.shape[0], tok.shape[1]
        x = w["token_embd.weight"][tok]
        attn_mask = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & mask[:, None, None, :]
        for il in range(self.L):
            W = lambda n: w[f"blk.{il}.{n}"]
            h = rms_norm(x, W("attn_norm.weight"), self.eps)
            q = (h @ W("attn_q.weight").T).view(B, T, self.H, self.D)
            k = (h @ W("attn_k.weight").T).view(B, T, self.Hkv, self.D)
            v = (h @ W("attn_v.weight").T).view(B, T, self.Hkv, self.D).transpose(1, 2)
            q = self.rope(rms_norm(q, W("attn_q_norm.weight"), self.eps).transpose(1, 2))
            k = self.rope(rms_norm(k, W("attn_k_norm.weight"), self.eps).transpose(1, 2))
            if self.Hkv != self.H:
                k = k.repeat_interleave(self.H // self.Hkv, 1)
                v = v.repeat_interleave(self.H // self.Hkv, 1)
            # HF's "eager" attention (torch 1.13 has no SDPA): softmax(q·kᵀ/√D, masked)·v
            att = (q @ k.transpose(2, 3)) / self.D**0.5
            o = torch.softmax(att.masked_fill(~attn_mask, float("-inf")), -1) @ v
            x = x + o.transpose(1, 2).reshape(B, T, -1) @ W("attn_output.weight").T
            m = rms_norm(x, W("ffn_norm.weight"), self.eps).view(B * T, -1)
            logits = self.routers[il](m)  # the hooked module
            p = torch.softmax(logits, -1, dtype=torch.float)
            g, sel = p.topk(self.k, -1)
            g = g / g.sum(-1, keepdim=True)
            out = torch.zeros_like(m)
            expert_mask = torch.nn.functional.one_hot(sel, self.E).permute(2, 1, 0)  # [E, k, N]
            gate, up, down = W("ffn_gate_exps.weight"), W("ffn_up_exps.weight"), W("ffn_down_exps.weight")
            for e in range(self.E):
                slot, idx = torch.where(expert_mask[e])
                if idx.numel() == 0:
                    continue
                xe = m[idx]
                ye = (torch.nn.functional.silu(xe @ gate[e].T) * (xe @ up[e].T)) @ down[e].T
                out.index_add_(0, idx, ye * g[idx, slot, None])
            x = x + out.view(B, T, -1)
        x = rms_norm(x, w["output_norm.weight"], self.eps)
        head = w.get("output.weight", w["token_embd.weight"])
        return x @ head.T  # HF computes the logits of every position too


def sequences(trace_dir):
    out = []
    for path in sorted(glob.glob(f"{trace_dir}/shard-*.safetensors")):
        buf = open(path, "rb").read()
        (n,) = struct.unpack("<Q", buf[:8])
        h = json.loads(buf[8 : 8 + n])
        data = buf[8 + n :]

        def arr(name, dt):
            b, e = h[name]["data_offsets"]
            return np.frombuffer(data[b:e], dtype=dt)

        tok, off = arr("tokens", np.int32), arr("seq_offset", np.int64)
        dt = {"I16": np.int16, "I32": np.int32}[h["topk"]["dtype"]]
        topk = arr("topk", dt).reshape(h["topk"]["shape"])  # [T, L, k]
        out += [(tok[off[i] : off[i + 1]].astype(np.int64), topk[off[i] : off[i + 1]]) for i in range(len(off) - 1)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("trace")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--single", action="store_true", help="one sequence at a time, no padding")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    kv, w = read_gguf(a.model)
    model = Model(kv, w)
    traced = sequences(a.trace)
    seqs = [t for t, _ in traced]
    recorded = []  # per batch and layer: (probs f16, ids) of the real tokens

    def hook(layer):
        def f(module, inputs, output):
            p = torch.softmax(output, -1, dtype=torch.float)
            ids = p.topk(model.k, -1).indices
            keep = hook.mask.reshape(-1)
            recorded.append((layer, p[keep].half().numpy(), ids[keep].int().numpy()))

        return f

    for il, r in enumerate(model.routers):
        r.register_forward_hook(hook(il))
    load_s = time.perf_counter() - t0
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # length-sorted: little padding
    B = 1 if a.single else a.batch
    t1 = time.perf_counter()
    n_tok = 0
    with torch.inference_mode():
        for b in range(0, len(order), B):
            batch = [seqs[i] for i in order[b : b + B]]
            T = max(len(s) for s in batch)
            tok = torch.zeros(len(batch), T, dtype=torch.int64)
            mask = torch.zeros(len(batch), T, dtype=torch.bool)
            for j, s in enumerate(batch):
                tok[j, : len(s)] = torch.from_numpy(s)
                mask[j, : len(s)] = True
            hook.mask = mask
            model.forward(tok, mask)
            n_tok += int(mask.sum())
    secs = time.perf_counter() - t1
    assert sum(r[1].shape[0] for r in recorded) == n_tok * model.L
    # the peer records what routescope recorded: same top-k sets (a flip where two probabilities tie up to
    # float rounding is possible; the share is printed, not asserted)
    ids = [np.concatenate([r[2] for r in recorded if r[0] == il]) for il in range(model.L)]  # order of `order`
    ref = np.concatenate([traced[i][1] for i in order])  # [n_tok, L, k]
    same = np.mean([np.mean(np.all(np.sort(ids[il], -1) == np.sort(ref[:, il, :], -1), -1)) for il in range(model.L)])
    print(json.dumps({"tokens": n_tok, "seconds": secs, "load_seconds": load_s, "tok_per_s": n_tok / secs,
                      "same_topk_as_trace": float(same)}))


if __name__ == "__main__":
    main()

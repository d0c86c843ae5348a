#!/usr/bin/env python3
"""Read a routescope trace shard with numpy only, following the safetensors spec:
8-byte little-endian header length N, a JSON header of N bytes, then raw little-endian tensor data
(offsets relative to the end of the header). Prints a JSON summary for the C++ test to compare."""
import json
import struct
import sys

import numpy as np

DTYPES = {"F16": np.float16, "F32": np.float32, "I16": np.int16, "I32": np.int32, "I64": np.int64}


def read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n :]
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=np.dtype(DTYPES[t["dtype"]]).newbyteorder("<")).reshape(t["shape"])
    return out, meta


t, meta = read(sys.argv[1])
probs = t["probs"].astype(np.float32)
print(json.dumps({
    "probs_shape": list(probs.shape),
    "tokens": t["tokens"].tolist(),
    "topk": t["topk"].reshape(-1).tolist(),
    "probs": probs.reshape(-1).tolist(),
    "logits": t["logits"].reshape(-1).tolist() if "logits" in t else [],
    "seq_offset": t["seq_offset"].tolist(),
    "metadata": meta,
    "max_abs_row_sum_error": float(np.abs(probs.sum(axis=-1) - 1.0).max()),
}))

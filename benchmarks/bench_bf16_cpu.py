"""One MiniLM training step (16 x 32 tokens) in fp32 and under bf16 autocast, best of 5 twice each.

Run as it is (native ISA), then with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 to see a CPU
without native bf16: prints the ISA and the fp32/bf16 step-time ratio (> 1: bf16 faster).
"""
import time, os, torch
from ftutils import models
m, tok = models.load("minilm", "sequence-classification", labels=["a", "b"], pooling="mean", seed=0)
batch = tok(["a fairly ordinary sentence about a film that runs on a bit"] * 16, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
y = torch.zeros(16, dtype=torch.long)
opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
def step(bf16):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = m(**batch, labels=y).loss
    loss.backward(); opt.step(); opt.zero_grad()
res = {}
for bf16 in (False, True, False, True):
    step(bf16)
    t = time.perf_counter()
    for _ in range(5): step(bf16)
    res.setdefault(bf16, []).append((time.perf_counter() - t) / 5)
print(os.environ.get("ONEDNN_MAX_CPU_ISA", "native"), {("bf16" if k else "fp32"): round(min(v), 3) for k, v in res.items()},
      "fp32/bf16", round(min(res[False]) / min(res[True]), 2), flush=True)

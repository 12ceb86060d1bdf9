"""How near ``vaekit.training.memory``'s estimate of a training step comes to the memory the step takes.

Why: issue 24 refuses, before anything is allocated, a model or batch that would not fit (the estimate:
the model built on the meta device, one loss taken there at the real batch size, the tensors autograd
saves counted). An estimate far below what a step takes would let an oversized run through to the
OOM killer; one far above would refuse runs that fit. Here each case runs in a fresh process: the
model is built, the batch made, the resident memory read, then three Adam steps taken and the peak
resident memory read (ru_maxrss); the measured growth is compared with the estimate of what a step adds
to the weights (gradients, Adam's moments and the activations: 12 bytes a parameter plus twice the
saved activations, for the gradients beside them in the backward pass).

Results: benchmarks/results/memory_estimate.json. Run alone from the repository root:
    .venv/bin/python benchmarks/memory_estimate.py
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import machine, write_results

CASES = [
    ("mlp", {}, 128),
    ("mlp", {}, 8192),
    ("conv", {}, 1024),
    ("hvae", {}, 256),
    ("vqvae", {}, 1024),
    ("mlp", {"objective": "btcvae"}, 4096),
    ("mlp", {"objective": "iwae", "k": 50}, 512),
    ("mlp", {"prior": "vamp"}, 1024),
    ("conv", {"posterior": "iaf"}, 1024),
]

CHILD = r"""
import json, resource, sys
import torch
from vaekit.models import build_model
from vaekit.training.memory import training_bytes, OPTIMIZER_BYTES
from vaekit.training.model_settings import model_config
from vaekit.training.settings import TrainConfig
from vaekit.training.step import loss_options

name, options, batch = json.loads(sys.argv[1])
config = TrainConfig.of(dataset="mnist", model=name, batch_size=batch, **options)
config.validate()
config_of_model = model_config(config, (1, 28, 28), 10)
weights, activations = training_bytes(config, config_of_model, (1, 28, 28), batch)
model = build_model(config_of_model)
parameters = sum(p.numel() for p in model.parameters())
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(batch, 1, 28, 28).round()
y = torch.arange(batch) % 10
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = resident()
for _ in range(3):
    loss = model.loss(x, y, **loss_options(model, config, 1.0, 60000)).objective
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
estimate = (OPTIMIZER_BYTES - 4) * parameters + activations
print(json.dumps({"estimate": estimate, "activations": activations, "measured": peak - before}))
"""


def main() -> None:
    rows = []
    for name, options, batch in CASES:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps([name, options, batch])],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        ratio = figures["estimate"] / figures["measured"]
        label = name + "".join(f" {k}={v}" for k, v in options.items())
        rows.append({"case": label, "batch": batch, **figures, "estimate_over_measured": ratio})
        print(
            f"{label:<28} batch {batch:>5}: estimate {figures['estimate'] / 2**20:8.1f} MiB, "
            f"measured {figures['measured'] / 2**20:8.1f} MiB, ratio {ratio:.2f}"
        )
    write_results("memory_estimate", {"machine": machine(), "cases": rows})


if __name__ == "__main__":
    main()

"""Time per training step of every prior, posterior and objective against the plain mlp, interleaved.

One step (forward, backward, Adam) of each part's model and of the plain model (784-400-20, batch 128,
binarized MNIST) in turn on the same batch, repeated, so that a CPU whose speed drifts over minutes
(seen here: the same step 6.3 ms in one run, 9 ms in another) slows every model alike: the ratios are
the medians of each part's step time over the plain model's. benchmarks/parts.py trains each part on its
own, one after the other, so its seconds-per-epoch column carries that drift; this is the figure to
quote for cost. Writes benchmarks/results/parts_speed.json. Run alone, from the repository root:
  .venv/bin/python benchmarks/parts_speed.py [--steps 600]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, check_data_dir
from harness import environment, interleaved, medians, ratios, read_results, utc_now, write_results
from parts_report import write_section

from vaekit.data import load_dataset, unit_float
from vaekit.models import MODELS

# name -> (the model's part options, the options of model.loss)
PARTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {}),
    "vamp K=100": ({"trained_prior": "vamp", "pseudo_inputs": 100}, {}),
    "vamp K=500": ({"trained_prior": "vamp", "pseudo_inputs": 500}, {}),
    "iaf 2 steps": ({"posterior": "iaf", "flow_steps": 2}, {}),
    "btcvae": ({}, {"objective": "btcvae", "beta": 4.0, "dataset_size": 10_800}),
    "factorvae, 256 x 3": ({"tc_discriminator": [256] * 3}, {"objective": "factorvae", "gamma": 10.0}),
    "factorvae, 1000 x 5": ({"tc_discriminator": [1000] * 5}, {"objective": "factorvae", "gamma": 10.0}),
    "dip-i": ({}, {"objective": "dip-i", "lambda_od": 10.0}),
    "dip-ii": ({}, {"objective": "dip-ii", "lambda_od": 10.0}),
    "mmd": ({}, {"objective": "mmd", "mmd_weight": 100.0}),
    "wae-gan, 256 x 3": ({"prior_adversary": [256] * 3}, {"objective": "wae-gan", "gan_weight": 3.0}),
    "wae-gan, 512 x 4": ({"prior_adversary": [512] * 4}, {"objective": "wae-gan", "gan_weight": 3.0}),
}
BATCH, N_BATCHES = 128, 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--steps", type=int, default=600, help="steps of each model (the first 10%% warm up)")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    torch.set_num_threads(2)
    dataset = load_dataset("mnist", args.data_dir)
    images = unit_float(dataset.train.images[: BATCH * N_BATCHES])
    batches = (images > torch.rand_like(images)).float().split(BATCH)  # binarized once, as in training

    def step_of(model: torch.nn.Module, options: dict[str, Any]) -> Callable[[], None]:
        """One training step of ``model``, on the next batch in turn (every model sees the same ones)."""
        optimizer = torch.optim.Adam(model.parameter_groups(1e-3))
        order = itertools.count()

        def step() -> None:
            objective = model.loss(batches[next(order) % N_BATCHES], **options).objective
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()

        return step

    contenders = {}
    for name, (parts, options) in PARTS.items():
        torch.manual_seed(0)
        contenders[name] = step_of(MODELS["mlp"](image_shape=(1, 28, 28), latent_dim=20, **parts), options)
    times = interleaved(args.steps, contenders, warmup=True)
    warm = args.steps // 10
    median_ms = {name: ms * 1e3 for name, ms in medians({n: t[warm:] for n, t in times.items()}).items()}
    x_plain = ratios(median_ms, "plain")
    rows = {n: {"step_ms": round(median_ms[n], 3), "x_plain": round(x_plain[n], 3)} for n in PARTS}
    for name, row in rows.items():
        print(f"{name:22s} {row['step_ms']:7.2f} ms  {row['x_plain']:.2f}x")
    speed = {"rows": rows, "steps": args.steps, "batch": BATCH}
    speed |= environment("cpu", "threads", "torch_version") | {"date": utc_now()}
    write_results("parts_speed", speed)
    parts = read_results("parts")
    if parts:  # the section of docs/models.md, with this table in it
        write_section(parts, speed)


if __name__ == "__main__":
    main()

"""A model from outside the package trains as fast in vaekit as in a bare PyTorch loop.

Why: issue 23 brings models from outside vaekit (examples/plugin/, a ResNet VAE registered by its entry
point or decorator); every vaekit model is held to a training step within 1.05-1.2x of the same network
in a bare loop. Here: ten steps of batch 128 on MNIST training images, vaekit's Trainer step (its loss
through NetworkVAE and the ELBO objective, its Adam) against the plugin's own encoder and decoder in a
loop written by hand (reparameterize, BCE with logits + KL, torch.optim.Adam), the same weights.
Interleaved rounds, medians.

Results: benchmarks/results/plugin_speed.json. Run alone (no other torch process) from the repository
root:
    .venv/bin/python benchmarks/plugin_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir
from harness import interleaved, machine, medians, quiet, write_results

from vaekit.data import load_dataset, unit_float
from vaekit.training import TrainConfig, Trainer

STEPS, BATCH = 10, 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    sys.path.insert(0, str(REPO_ROOT / "examples" / "plugin"))
    import vaekit_resnet  # noqa: F401  (registers "resnet" by its decorator)

    images = unit_float(load_dataset("mnist", args.data_dir).train.images[: STEPS * BATCH])
    batches = [images[i : i + BATCH] for i in range(0, len(images), BATCH)]
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(dataset="mnist", data_dir=str(args.data_dir), model="resnet", epochs=1)
        trainer = Trainer(config, Path(folder) / "run", progress=False, log=quiet)
        encoder, decoder = copy.deepcopy(trainer.model.encoder), copy.deepcopy(trainer.model.decoder)
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)

        def bare_steps() -> None:
            for x in batches:
                mu, logvar = encoder(x).chunk(2, dim=1)
                z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                recon = F.binary_cross_entropy_with_logits(decoder(z), x, reduction="sum")
                kl = -0.5 * torch.sum(1 + logvar - mu.square() - logvar.exp())
                loss = (recon + kl) / len(x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        def vaekit_steps() -> None:
            for i in range(STEPS):
                trainer.step(torch.arange(i * BATCH, (i + 1) * BATCH))

        trainer.state.perm = torch.arange(trainer.n_train)
        times = interleaved(args.rounds, {"vaekit": vaekit_steps, "bare": bare_steps}, warmup=True)
    per_step = {name: seconds / STEPS for name, seconds in medians(times).items()}
    result = {
        "machine": machine(),
        "model": "resnet (examples/plugin, default settings)",
        "seconds_per_step": per_step,
        "ratio": per_step["vaekit"] / per_step["bare"],
        "rounds": args.rounds,
    }
    write_results("plugin_speed", result)
    print(f"vaekit {per_step['vaekit'] * 1e3:.1f} ms / step, bare {per_step['bare'] * 1e3:.1f} ms: "
          f"{result['ratio']:.3f}x")  # fmt: skip


if __name__ == "__main__":
    main()

"""Shared pieces of the benchmarks: the baseline "tutorial pipeline" and the MNIST data it reads.

The baseline is the classic pytorch/examples MNIST VAE (vae/main.py), rebuilt without torchvision:
a per-sample Dataset that makes one PIL image per item and converts it as torchvision's ToTensor
does, a DataLoader at batch 128, the tutorial's 784-400-20 model, summed BCE + KL loss and Adam.
The benchmarks import it from here so that they all measure the very same baseline. Timing, statistics
and result writing are in harness.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from harness import RESULTS_DIR
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from vaekit.data import Dataset as VaekitDataset
    from vaekit.data import ImageSet
    from vaekit.training import Trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
BATCH_SIZE = 128


# ------------------------------------------------------------------------------------------ data
def check_data_dir(data_dir: Path) -> None:
    """Exit with a one-line message (code 1) unless ``data_dir`` holds the four MNIST IDX files.

    Checked here because vaekit's loader would otherwise try to download missing files.
    """
    if not data_dir.is_dir():
        sys.exit(f"error: MNIST data folder {data_dir} not found (pass --data-dir)")
    missing = [name for name in MNIST_FILES if not any((data_dir / n).is_file() for n in (name, name[:-3]))]
    if missing:
        sys.exit(f"error: MNIST data folder {data_dir} lacks {', '.join(missing)}")


class TutorialMNIST(Dataset):
    """torchvision.datasets.MNIST with transform=ToTensor(), step for step, without torchvision.

    Like torchvision, the images are one uint8 tensor [N, 28, 28] and the labels one int64 tensor;
    each item indexes them, wraps the image in a PIL image and converts it back (ToTensor).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        assert images.dtype == torch.uint8 and images.ndim == 3, images.shape
        self.data = images
        self.targets = labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # torchvision/datasets/mnist.py, MNIST.__getitem__
        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy(), mode="L")
        return to_tensor(img), target


def to_tensor(pic: Image.Image) -> torch.Tensor:
    """torchvision.transforms.functional.to_tensor for a PIL image of mode "L"."""
    img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
    img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
    img = img.permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255)


def tutorial_datasets(data_dir: Path) -> tuple[TutorialMNIST, TutorialMNIST]:
    """(train, test) as per-sample datasets over uint8 tensors, loaded by vaekit's IDX reader."""
    from vaekit.data import load_dataset

    ds = load_dataset("mnist", data_dir)
    return (
        TutorialMNIST(ds.train.images.squeeze(1).contiguous(), ds.train.labels),
        TutorialMNIST(ds.test.images.squeeze(1).contiguous(), ds.test.labels),
    )


def open_tutorial_mnist(data_dir: Path) -> tuple[Path, TutorialMNIST]:
    """The checked MNIST folder (resolved) and the tutorial's training set; prints the torch version,
    its thread count and the folder, as every speed benchmark's first line."""
    data_dir = data_dir.resolve()
    check_data_dir(data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data {data_dir}")
    train_set, _ = tutorial_datasets(data_dir)
    return data_dir, train_set


def tutorial_loader(dataset: TutorialMNIST, shuffle: bool) -> DataLoader:
    """The tutorial's loader: batch 128, single process (num_workers=0, as it runs on CPU)."""
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=shuffle)


# ----------------------------------------------------------------------------------------- model
class TutorialVAE(nn.Module):
    """pytorch/examples vae/main.py, layer for layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def tutorial_loss(
    recon_x: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """Summed (not averaged) BCE over pixels and images, plus the summed analytic KL."""
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def tutorial_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The tutorial's optimizer: torch.optim.Adam at lr 1e-3, its other settings left at their defaults."""
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def tutorial_train_epoch(model: TutorialVAE, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    """One epoch exactly as the tutorial's train(): returns the summed loss / number of images."""
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = tutorial_loss(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(loader.dataset)


def tutorial_test_loss(model: TutorialVAE, loader: DataLoader) -> float:
    """The tutorial's test(): eval mode, no grad, one sampled z per image, summed loss / images."""
    model.eval()
    test_loss = 0.0
    with torch.no_grad():
        for data, _ in loader:
            recon_batch, mu, logvar = model(data)
            test_loss += tutorial_loss(recon_batch, data, mu, logvar).item()
    return test_loss / len(loader.dataset)


def vaekit_model_on_loader(trainer: Trainer, loader: DataLoader) -> float:
    """One epoch of a vaekit Trainer's model and optimizer on batches from a per-sample loader:
    the tutorial's data pipeline around vaekit's step. Returns the mean loss per image."""
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    total = torch.zeros((), dtype=torch.float64)
    for data, _ in loader:
        objective, terms = model.loss(data)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total += terms["loss"].double() * len(data)
    return total.item() / len(loader.dataset)


def steps_trained(run_config: dict, checkpoint: dict) -> int:
    """Optimizer steps a run's checkpoint has taken: its whole epochs' batches (the last one partial)
    and the steps into the epoch it stopped in. ``run_config``: the run's config.json."""
    batches_per_epoch = -(-run_config["data"]["n_train"] // run_config["train"]["batch_size"])
    return checkpoint["epoch"] * batches_per_epoch + checkpoint["step"]


def measuring_classifier(dataset: VaekitDataset) -> tuple[nn.Module, dict]:
    """The dataset's cached sample-quality classifier and its record, as ``vaekit evaluate`` uses them;
    exits with a one-line reason if it is below evaluate's accuracy bar (its figures would mislead)."""
    from vaekit.evaluation.classifier import load_classifier
    from vaekit.evaluation.quality import classifier_shortfall

    classifier, info = load_classifier(dataset, log=print)
    shortfall = classifier_shortfall(info["test_accuracy"], dataset.name)
    if shortfall is not None:
        sys.exit(shortfall)
    return classifier, info


def run_folders_arguments(doc: str, default_name: str) -> argparse.Namespace:
    """The command line of a script that reads finished run folders: ``RUN [RUN ...]``, ``--name`` and
    ``--results-dir`` (RESULTS_DIR/NAME.json); ``doc``'s first line is its description."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--name", default=default_name, help="results/NAME.json")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="default benchmarks/results")
    return parser.parse_args()


def factored_test_split(run: Path) -> tuple[dict, VaekitDataset, ImageSet, torch.Tensor]:
    """A finished run's config, dataset, test split, and that split's images as ``vaekit evaluate``
    takes them (``evaluation.runs.evaluated_images``), for scripts that score against its dataset's
    known factors: a one-line exit where it has none."""
    from vaekit.evaluation.runs import evaluated_images, load_run_dataset, run_split
    from vaekit.utils.files import read_run_config

    config = read_run_config(run)
    dataset = load_run_dataset(config, None, print)
    if not dataset.factor_names:
        raise SystemExit(f"{run}: its dataset has no known factors to score against")
    images = run_split(config, "test", dataset=dataset)
    return config, dataset, images, evaluated_images(config, images, "test")


def train_quietly(out: Path, **settings: Any) -> Path:
    """Train a vaekit run into ``out`` from settings by name (``TrainConfig.of``), printing nothing."""
    from harness import quiet

    from vaekit.training import TrainConfig, Trainer

    Trainer(TrainConfig.of(**settings), out, progress=False, log=quiet).run()
    return out


def frechet_by_prior(
    model: nn.Module, classifier: nn.Module, test: ImageSet, n_samples: int
) -> dict[str, float]:
    """``frechet_standard`` and ``frechet_fitted``: the Frechet distance (``sample_quality``, seed 0) of
    ``n_samples`` samples from the prior the model trained with and from its fitted prior."""
    from vaekit.evaluation.quality import sample_quality

    return {
        f"frechet_{prior}": sample_quality(model, classifier, test, n_samples, seed=0, prior=prior)[
            "frechet_distance"
        ]
        for prior in ("standard", "fitted")
    }

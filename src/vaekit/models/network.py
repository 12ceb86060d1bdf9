"""A Gaussian-latent VAE from just two networks, for models written outside the package.

A subclass builds ``self.encoder`` (images [B, C, H, W] in [0, 1] -> [B, 2 * latent_dim]: the posterior's
mean and log-variance side by side) and ``self.decoder`` (latents [B, latent_dim] -> pixel logits
[B, C, H, W]) after ``super().__init__``, and gets everything a GaussianVAE has: every prior, posterior
and objective, the fitted prior, evaluation, the explorer and export. examples/plugin/ is one.
"""

from __future__ import annotations

import torch
from torch import nn

from vaekit.models.gaussian import GaussianVAE, Posterior
from vaekit.utils.errors import VaekitError


class NetworkVAE(GaussianVAE):
    """A GaussianVAE whose ``encode`` and ``decode_logits`` are ``self.encoder`` and ``self.decoder``."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)


def check_networks(model: GaussianVAE) -> None:
    """Run a plugin's networks once on two blank images, so that a network that does not fit the model's
    image shape or latent size is a one-line error when the model is built, not a traceback mid-training.
    Models that are not Gaussian-latent define their own shapes and are not checked."""
    if not isinstance(model, GaussianVAE):
        return
    what = f"model {model.name!r} ({type(model).__module__})"
    x = torch.zeros(2, *model.image_shape, device=model.device)
    labels = torch.zeros(2, dtype=torch.long, device=model.device) if model.conditional else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(model, NetworkVAE):
                features = model.encoder(x)
                if tuple(features.shape) != (2, 2 * model.latent_dim):
                    raise VaekitError(
                        f"{what}: its encoder gives {list(features.shape)}, expected "
                        f"{[2, 2 * model.latent_dim]} (mean and log-variance side by side)"
                    )
            posterior = model.encode(x, labels)
            if not (isinstance(posterior, tuple) and len(posterior) == 2):
                got = type(posterior).__name__
                raise VaekitError(f"{what}: encode must return (mean, log-variance), got {got}")
            expected = (2, model.latent_dim)
            for part, value in zip(("mean", "log-variance"), posterior, strict=True):
                if tuple(value.shape) != expected:
                    raise VaekitError(
                        f"{what}: encode's {part} is {list(value.shape)}, expected {list(expected)}"
                    )
            logits = model.decode_logits(posterior[0], labels)
            if tuple(logits.shape) != (2, *model.image_shape):
                raise VaekitError(
                    f"{what}: decode_logits gives {list(logits.shape)}, expected {[2, *model.image_shape]}"
                )
    except VaekitError:
        raise
    except Exception as exc:  # the plugin's own failure on images of its configured shape
        message = " ".join(str(exc).split())
        raise VaekitError(
            f"{what} fails on images of shape {list(model.image_shape)}: {type(exc).__name__}: {message}"
        ) from None
    finally:
        model.train(was_training)

"""A fitted prior for Gaussian-latent models: Gaussian mixtures over the latents of the training images.

A VAE trained with p(z) = N(0, I) decodes z ~ N(0, I) into poor samples where its aggregate posterior
q(z) = E_x q(z|x) leaves holes in the prior's mass. Ghosh et al. 2020 ("From Variational to
Deterministic Autoencoders", arXiv:1903.12436, sec. 4, "ex-post density estimation") fit a Gaussian
mixture to the training set's latent codes after training and sample from it instead; pythae ships the
same as GaussianMixtureSampler. Here the codes are the posterior means E[z|x], the mixture has full
covariances, and where the images have labels there is one mixture per class, so that a plain VAE can
draw a requested class: p(z) = sum_y p(y) p(z | y) with p(z | y) a mixture of K Gaussians.

The mixture is fitted by expectation-maximisation in float64 (Dempster, Laird & Rubin 1977), started
from a seeded k-means++ clustering (Arthur & Vassilvitskii 2007) refined by Lloyd iterations: the same
latents and seed give the same prior, on any device. Each EM step is the one scikit-learn's
GaussianMixture takes (same convergence test on the mean log-likelihood, same covariance floor), so
the two agree when started from the same parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vaekit.models.labels import check_labels
from vaekit.models.maths import (
    class_mixture_log_prob,
    gaussian_components_log_prob,
    mixture_sample,
)
from vaekit.utils.errors import VaekitError

KIND = "gaussian_mixture"
REG_COVAR = (
    1e-6  # added to every covariance's diagonal: a latent unit the model leaves unused stays invertible
)
KMEANS_ITERATIONS = 20


@dataclass
class MixtureFit:
    """One fitted mixture: log_weights [K], means [K, D], scale_tril [K, D, D] (float64), and how EM went."""

    log_weights: torch.Tensor
    means: torch.Tensor
    scale_tril: torch.Tensor
    iterations: int
    converged: bool
    mean_log_likelihood: float  # per latent, nats, of the parameters before the last M-step (as sklearn)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k centres drawn by k-means++: the first uniformly, each next one with probability proportional
    to the squared distance to the nearest centre chosen so far. x [N, D] -> centres [k, D]."""
    first = torch.randint(len(x), (1,), generator=generator, device=x.device)
    centres = x[first]
    nearest = (x - centres).pow(2).sum(1)
    for _ in range(1, k):
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)  # all points equal: uniform
        chosen = x[torch.multinomial(weights, 1, generator=generator)]
        centres = torch.cat([centres, chosen])
        nearest = torch.minimum(nearest, (x - chosen).pow(2).sum(1))
    return centres


def kmeans_assignments(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Cluster index [N] of each point after k-means++ and up to KMEANS_ITERATIONS Lloyd steps (a centre
    that loses all its points stays where it was)."""
    centres = kmeans_plus_plus(x, k, generator)
    assign = torch.cdist(x, centres).argmin(1)
    for _ in range(KMEANS_ITERATIONS):
        one_hot = nn.functional.one_hot(assign, k).to(x.dtype)
        counts = one_hot.sum(0)
        centres = torch.where(
            (counts > 0).unsqueeze(1), one_hot.T @ x / counts.clamp(min=1).unsqueeze(1), centres
        )
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
    return assign


CHUNK = 2048  # rows of x per pass in EM: [chunk, K D] intermediates stay small (in cache), whatever N is


def m_step(
    x: torch.Tensor, resp: torch.Tensor, reg_covar: float = REG_COVAR
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixture parameters from responsibilities: N_k = sum_n r_nk, pi_k = N_k / N,
    mu_k = sum_n r_nk x_n / N_k, Sigma_k = sum_n r_nk x_n x_n^T / N_k - mu_k mu_k^T + reg I.

    The second moments of all components come from one product of the responsibilities with the
    points' outer products x_n x_n^T, taken CHUNK rows at a time (float64: the subtraction of
    mu_k mu_k^T loses nothing that matters at latent scales).
    x [N, D], resp [N, K] -> log_weights [K], means [K, D], scale_tril [K, D, D].
    """
    dim = x.shape[1]
    counts = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps  # no empty component divides by zero
    means = resp.T @ x / counts.unsqueeze(1)
    second = torch.zeros(len(counts), dim * dim, dtype=x.dtype, device=x.device)
    for start in range(0, len(x), CHUNK):
        rows = x[start : start + CHUNK]
        second += resp[start : start + CHUNK].T @ (rows.unsqueeze(2) * rows.unsqueeze(1)).flatten(1)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    covariances = second.view(-1, dim, dim) / counts.view(-1, 1, 1) - means.unsqueeze(2) * means.unsqueeze(1)
    scale_tril = torch.linalg.cholesky((covariances + covariances.transpose(1, 2)) / 2 + reg_covar * eye)
    return (counts / len(x)).log(), means, scale_tril


def e_step(
    x: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Responsibilities r_nk = p(k | x_n) [N, K] and log p(x_n) [N], CHUNK rows at a time."""
    resp, log_norm = [], []
    for rows in x.split(CHUNK):
        log_joint = gaussian_components_log_prob(rows, means, scale_tril) + log_weights
        norm = torch.logsumexp(log_joint, dim=1, keepdim=True)
        resp.append((log_joint - norm).exp())
        log_norm.append(norm.squeeze(1))
    return torch.cat(resp), torch.cat(log_norm)


def fit_gaussian_mixture(
    x: torch.Tensor,
    components: int,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = REG_COVAR,
    init: torch.Tensor | None = None,
    spread: torch.Tensor | None = None,
) -> MixtureFit:
    """Fit a full-covariance Gaussian mixture of ``components`` to points x [N, D] by EM.

    Starts from a seeded k-means clustering (or from ``init``, responsibilities [N, K]); stops when the
    mean log-likelihood changes by less than ``tol`` nats or after ``max_iter`` EM steps.

    ``spread`` [N, D], if given, is a variance around each point (a posterior's, when x are posterior
    means): each component's covariance then gains the responsibility-weighted mean of it on its
    diagonal, Sigma_k + diag(sum_n r_nk s_n / N_k). By the law of total variance that is the covariance
    of the points' own distributions that the component covers, so the mixture models the aggregate
    posterior q(z) = E_x q(z|x) rather than its means alone: a latent unit the model leaves unused keeps
    its N(0, 1) spread instead of collapsing to the covariance floor.
    """
    if not 1 <= components <= len(x):
        raise VaekitError(
            f"a mixture of {components} components needs 1 to {len(x)} of them for {len(x)} points"
        )
    x = x.double()
    if init is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
        init = nn.functional.one_hot(kmeans_assignments(x, components, generator), components)
    try:
        log_weights, means, scale_tril = m_step(x, init.to(x.dtype), reg_covar)
        mean_ll, converged, iterations = -math.inf, False, 0
        while iterations < max_iter:
            iterations += 1
            resp, log_norm = e_step(x, log_weights, means, scale_tril)
            log_weights, means, scale_tril = m_step(x, resp, reg_covar)
            previous, mean_ll = mean_ll, log_norm.mean().item()
            if abs(mean_ll - previous) < tol:
                converged = True
                break
        if spread is not None:
            resp, _ = e_step(x, log_weights, means, scale_tril)
            extra = resp.T @ spread.double() / (resp.sum(0) + 10 * torch.finfo(resp.dtype).eps).unsqueeze(1)
            covariances = scale_tril @ scale_tril.transpose(1, 2) + torch.diag_embed(extra)
            scale_tril = torch.linalg.cholesky(covariances)
    except torch.linalg.LinAlgError:
        raise VaekitError(
            "a mixture component's covariance became singular; the latents may hold repeated points: "
            "try fewer components"
        ) from None
    return MixtureFit(log_weights, means, scale_tril, iterations, converged, mean_ll)


class MixturePrior(nn.Module):
    """p(z) = sum_y p(y) sum_k pi_yk N(z; mu_yk, L_yk L_yk^T): a mixture of ``components`` full-covariance
    Gaussians per class (``num_classes`` > 0), or one mixture (``num_classes`` = 0).

    Its parameters are buffers, fitted (``fit``) rather than trained, saved with the model's weights;
    ``config`` rebuilds the empty shapes for loading.
    """

    def __init__(self, latent_dim: int, components: int, num_classes: int = 0, kind: str = KIND) -> None:
        super().__init__()
        if kind != KIND:
            raise ValueError(f"unknown prior kind {kind!r} for a Gaussian latent; expected {KIND!r}")
        if latent_dim < 1 or components < 1 or num_classes < 0:
            raise ValueError(f"bad prior sizes: latent_dim {latent_dim}, components {components}")
        self.config = {
            "kind": KIND,
            "latent_dim": latent_dim,
            "components": components,
            "num_classes": num_classes,
        }
        self.latent_dim, self.components, self.num_classes = latent_dim, components, num_classes
        groups = max(num_classes, 1)
        eye = torch.eye(latent_dim).expand(groups, components, latent_dim, latent_dim)
        self.register_buffer("class_log_weights", torch.full((groups,), -math.log(groups)))
        self.register_buffer("log_weights", torch.full((groups, components), -math.log(components)))
        self.register_buffer("means", torch.zeros(groups, components, latent_dim))
        self.register_buffer("scale_tril", eye.clone())

    @property
    def has_classes(self) -> bool:
        return self.num_classes > 0

    def _check_labels(self, labels: torch.Tensor | None) -> None:
        if labels is None:
            return
        if not self.has_classes:
            raise VaekitError("this fitted prior has no classes: it was fitted without labels")
        check_labels(labels, self.num_classes)

    def log_prob(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p(z | y) for the given labels, else log p(z). z [B, D], labels [B] -> [B], nats."""
        self._check_labels(labels)
        return class_mixture_log_prob(
            z, self.class_log_weights, self.log_weights, self.means, self.scale_tril, labels
        )

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """n latents [n, D]: from p(z | y) with labels [n], else from p(z) (a class drawn by p(y) first).
        ``temperature`` scales every component's standard deviations (1: the fitted mixture), or with one
        per unit [D], each unit's: z = mu_k + diag(t) L_k eps."""
        self._check_labels(labels)
        if labels is None:
            labels = torch.multinomial(self.class_log_weights.exp(), n, replacement=True, generator=generator)
        if isinstance(temperature, torch.Tensor):
            scale_tril = self.scale_tril * temperature.to(self.scale_tril).view(-1, 1)
        else:
            scale_tril = self.scale_tril if temperature == 1.0 else self.scale_tril * temperature
        return mixture_sample(self.log_weights, self.means, scale_tril, labels, generator)

    @classmethod
    def fit(
        cls,
        latents: torch.Tensor,
        labels: torch.Tensor | None = None,
        components: int = 10,
        num_classes: int = 0,
        seed: int = 0,
        spread: torch.Tensor | None = None,
    ) -> tuple[MixturePrior, list[MixtureFit]]:
        """Fit to latents [N, D]: one mixture, or with ``labels`` [N] one per class of ``num_classes``,
        weighted by the classes' frequencies; ``spread`` [N, D]: each latent's posterior variance (see
        ``fit_gaussian_mixture``). Returns the prior (on the latents' device) and the fits."""
        if components < 1:
            raise VaekitError(f"a mixture needs at least 1 component, got {components}")
        if len(latents) < components:
            raise VaekitError(f"{components} mixture components are more than the {len(latents)} latents")
        prior = cls(latents.shape[1], components, num_classes if labels is not None else 0)
        if labels is None:
            groups, spreads = [latents], [spread]
        else:
            labels = labels.to(latents.device)
            groups = [latents[labels == c] for c in range(num_classes)]
            spreads = [None if spread is None else spread[labels == c] for c in range(num_classes)]
            for c, group in enumerate(groups):
                if len(group) < components:
                    raise VaekitError(
                        f"class {c} has {len(group)} training images, fewer than the {components} "
                        "components of its mixture: use fewer components"
                    )
        fits = [
            fit_gaussian_mixture(group, components, seed=seed + i, spread=spreads[i])
            for i, group in enumerate(groups)
        ]
        sizes = torch.tensor([float(len(g)) for g in groups], dtype=torch.float64)
        prior = prior.to(latents.device)
        prior.class_log_weights.copy_((sizes / sizes.sum()).log())
        prior.log_weights.copy_(torch.stack([f.log_weights for f in fits]))
        prior.means.copy_(torch.stack([f.means for f in fits]))
        prior.scale_tril.copy_(torch.stack([f.scale_tril for f in fits]))
        return prior, fits

"""The mathematics every Gaussian-latent VAE shares, as pure functions of tensors.

References: Kingma & Welling, "Auto-Encoding Variational Bayes" (2013), arXiv:1312.6114;
Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders" (2015), arXiv:1509.00519;
Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow" (2016), arXiv:1606.04934.
Unless a docstring says otherwise, each function returns one value per example (reduced over
everything but the batch dimensions); averaging over the batch is the caller's choice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Draw z ~ N(mu, diag(exp(logvar))) as z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

    Differentiable in mu and logvar (the reparameterisation trick, Kingma & Welling 2013, sec. 2.4).
    Shapes: mu, logvar [..., B, D] -> z [..., B, D] (e.g. [k, B, D] for k draws per image).
    ``rows = (start, total)``: draw the noise of a batch of ``total`` images and keep rows start..start+B,
    so that data-parallel ranks, each with its share of a batch, use exactly one process's noise.
    """
    shape = mu.shape if rows is None else (*mu.shape[:-2], rows[1], mu.shape[-1])
    eps = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
    if rows is not None:
        eps = eps[..., rows[0] : rows[0] + mu.shape[-2], :]
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu_j, exp(logvar_j)) || N(0, 1) ) = -1/2 (1 + logvar_j - mu_j^2 - exp(logvar_j)) per dimension.

    Kingma & Welling 2013, appendix B. Shapes: mu, logvar [B, D] -> [B, D], in nats (no reduction).
    """
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ): ``gaussian_kl_per_dim`` summed over D. [B, D] -> [B]."""
    return gaussian_kl_per_dim(mu, logvar).sum(dim=-1)


def free_bits_kl(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL term with free bits: sum_j max(lambda, mean_batch KL_j) (Kingma et al. 2016, appendix C.8).

    A dimension whose batch-average KL is below ``free_bits`` (lambda, nats) contributes the constant
    lambda and so gets no gradient pushing it further towards the prior, which keeps latent units from
    collapsing early in training. Shapes: kl_per_dim [B, D] -> a scalar (already a batch mean).
    """
    return kl_per_dim.mean(dim=0).clamp(min=free_bits).sum()


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) = -1/2 sum_j (log 2pi + logvar_j + (z_j - mu_j)^2 / exp(logvar_j)).

    Shapes broadcast: z [..., D] with mu, logvar [..., D] -> [...], in nats.
    """
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) = -1/2 sum_j (log 2pi + z_j^2). Shapes: [..., D] -> [...], in nats."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(dim=-1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) under independent Bernoullis with p = sigmoid(logits), for x in [0, 1].

    = sum_i [ softplus(logits_i) - x_i * logits_i ], the binary cross-entropy summed over pixels;
    computed from logits, which stays finite where sigmoid saturates. For grey-level x this is the
    continuous "BCE" reconstruction term of the classic MNIST VAE. Shapes: [B, ...] -> [B], in nats.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return bce.flatten(1).sum(dim=1)


def calibrated_log_std(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log sigma* = 0.5 log mean((x - mean)^2): the one shared std that makes the Gaussian likelihood of
    ``x`` highest for these means (its derivative in sigma is 0 there), the calibrated decoder of
    sigma-VAE (Rybkin, Daniilidis & Levine 2021, eq. 5). Shapes: [B, ...] -> a scalar, detached."""
    return 0.5 * torch.log((x.float() - mean.float()).detach().pow(2).mean())


def gaussian_nll(mean: torch.Tensor, log_std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, sigma^2) = sum_i [log sigma_i + 1/2 log 2pi + (x_i - mean_i)^2 / (2 sigma_i^2)].

    sigma = exp(log_std).

    The Gaussian decoder likelihood; ``log_std`` broadcasts against ``mean`` (a scalar for one shared
    standard deviation, or per pixel). A density, not a probability: for a small std it is negative.
    Shapes: mean, x [B, ...] -> [B], in nats.
    """
    log_std = log_std.expand_as(mean)
    nll = log_std + 0.5 * LOG_2PI + 0.5 * (x - mean).pow(2) * torch.exp(-2.0 * log_std)
    return nll.flatten(1).sum(dim=1)


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound L_k = log (1/k) sum_i w_i, from log w_i = log p(x, z_i) - log q(z_i | x).

    Burda et al. 2015, eq. 8; computed with log-sum-exp, so it stays finite for weights far below
    exp(-100). L_1 is the ELBO and L_k rises towards log p(x) as k grows.
    Shapes: log_weights [k, B] -> [B], in nats.
    """
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


# ----------------------------------------------------------------------------------- Gaussian mixtures
# A mixture p(z) = sum_k pi_k N(z; mu_k, Sigma_k) with full covariances, each given by its Cholesky factor
# L_k (lower triangular, Sigma_k = L_k L_k^T). The "ex-post density estimation" prior of Ghosh et al. 2020
# ("From Variational to Deterministic Autoencoders", arXiv:1903.12436, sec. 4) is one such mixture fitted
# to a trained model's latents; a per-class prior is one mixture per class, stacked along a leading axis.


def gaussian_components_log_prob(
    z: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor
) -> torch.Tensor:
    """log N(z; mu_k, L_k L_k^T) for every component k at once.

    = -1/2 (D log 2pi + |L_k^-1 (z - mu_k)|^2) - sum_j log L_k[j, j]. The whitening L_k^-1 (z - mu_k) is
    taken for all components by one matrix product of z with the stacked L_k^-T, so the cost is a GEMM
    of [N, D] by [D, K D], not K triangular solves per point.
    Shapes: z [..., D], means [K, D], scale_tril [K, D, D] -> [..., K], in nats.
    """
    components, dim = means.shape
    eye = torch.eye(dim, dtype=scale_tril.dtype, device=scale_tril.device).expand_as(scale_tril)
    whiten = torch.linalg.solve_triangular(scale_tril, eye, upper=False).transpose(1, 2)  # L_k^-T [K, D, D]
    flat = z.reshape(-1, dim).to(scale_tril.dtype)
    y = (flat @ whiten.permute(1, 0, 2).reshape(dim, components * dim)).view(-1, components, dim)
    y = y - torch.einsum("kd,kde->ke", means, whiten)
    log_det = scale_tril.diagonal(dim1=1, dim2=2).log().sum(-1)  # log |L_k| = 1/2 log |Sigma_k|
    log_prob = -0.5 * (dim * LOG_2PI + y.pow(2).sum(-1)) - log_det
    return log_prob.view(*z.shape[:-1], components)


def mixture_log_prob(
    z: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor
) -> torch.Tensor:
    """log p(z) = log sum_k pi_k N(z; mu_k, Sigma_k), by log-sum-exp over the components.

    ``log_weights`` are log pi_k (normalised: logsumexp = 0). Shapes: z [..., D], log_weights [K],
    means [K, D], scale_tril [K, D, D] -> [...], in nats (in scale_tril's dtype).
    """
    return torch.logsumexp(gaussian_components_log_prob(z, means, scale_tril) + log_weights, dim=-1)


def class_mixture_log_prob(
    z: torch.Tensor,
    class_log_weights: torch.Tensor,
    log_weights: torch.Tensor,
    means: torch.Tensor,
    scale_tril: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """A mixture per class: log p(z | y) = log sum_k pi_yk N(z; mu_yk, Sigma_yk), or without ``labels``
    the marginal log p(z) = log sum_y p(y) p(z | y), itself a mixture of C K components.

    ``class_log_weights`` are log p(y); ``log_weights[y]`` the log pi_yk of class y. Shapes: z [B, D],
    class_log_weights [C], log_weights [C, K], means [C, K, D], scale_tril [C, K, D, D], labels [B]
    (long) -> [B], in nats.
    """
    classes, components, dim = means.shape
    per_component = gaussian_components_log_prob(
        z, means.reshape(-1, dim), scale_tril.reshape(-1, dim, dim)
    ).view(len(z), classes, components)
    per_class = torch.logsumexp(per_component + log_weights, dim=-1)  # log p(z | y) [B, C]
    if labels is None:
        return torch.logsumexp(per_class + class_log_weights, dim=-1)
    return per_class.gather(1, labels.view(-1, 1).long()).squeeze(1)


def mixture_sample(
    log_weights: torch.Tensor,
    means: torch.Tensor,
    scale_tril: torch.Tensor,
    groups: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One draw from mixture ``groups[b]`` for each b: pick a component k ~ pi of that mixture, then
    z = mu_k + L_k eps with eps ~ N(0, I).

    The G mixtures are stacked (G = 1 for one mixture; G = C for a per-class prior). Shapes:
    log_weights [G, K], means [G, K, D], scale_tril [G, K, D, D], groups [B] (long) -> z [B, D].
    """
    probs = log_weights.float().softmax(-1)[groups]  # [B, K]
    component = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    eps = torch.randn(
        len(groups), means.shape[-1], 1, generator=generator, device=means.device, dtype=means.dtype
    )
    return means[groups, component] + (scale_tril[groups, component] @ eps).squeeze(-1)


# ------------------------------------------------------------------------- mixtures of diagonal Gaussians
# The VampPrior (Tomczak & Welling 2018, arXiv:1705.07120) is p(z) = 1/K sum_k q(z | u_k), a uniform
# mixture of the (diagonal Gaussian) posteriors of K learned pseudo-inputs u_k.


def diagonal_mixture_log_prob(
    z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, log_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(z) = log sum_k pi_k N(z; m_k, diag(exp(v_k))), per group of K components, equally weighted
    (pi_k = 1/K, Tomczak & Welling 2018, eq. 9) unless ``log_weights`` gives the normalised log pi.

    Shapes: z [..., D], means and logvars [G, K, D] (G groups, e.g. one per class), log_weights [G, K]
    -> [..., G], in nats.

    The squared distances come from two matrix products, sum_j (z_j - m_kj)^2 / s_kj =
    z^2 . (1/s_k) - 2 z . (m_k/s_k) + sum_j m_kj^2 / s_kj, instead of an [N, G K, D] tensor of
    differences: at K = 100 that is most of a VampPrior's cost per step. The products run in float64
    (and outside autocast), since the three terms can be large and nearly cancel.
    """
    groups, components, dim = means.shape
    with torch.autocast("cuda" if z.is_cuda else "cpu", enabled=False):  # (autocast knows no "meta")
        flat = z.reshape(-1, dim).double()
        mu, logvar = means.reshape(-1, dim).double(), logvars.reshape(-1, dim).double()
        precision = torch.exp(-logvar)  # [G K, D]
        constant = dim * LOG_2PI + logvar.sum(-1) + (mu.pow(2) * precision).sum(-1)  # [G K]
        squared = flat.pow(2) @ precision.T - 2.0 * flat @ (mu * precision).T  # [N, G K]
        per_component = -0.5 * (squared + constant)
        per_component = per_component.view(-1, groups, components)
        if log_weights is None:
            per_group = torch.logsumexp(per_component, dim=-1) - math.log(components)
        else:
            per_group = torch.logsumexp(per_component + log_weights.double(), dim=-1)
    return per_group.to(z.dtype).view(*z.shape[:-1], groups)


def gauss_hermite(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes t_i and weights w_i with E_{N(m, s^2)}[f(z)] ~= sum_i w_i f(m + s t_i) (probabilists' form:
    the Gauss-Hermite rule rescaled, t_i = sqrt(2) x_i and w_i = w_i' / sqrt(pi)). Exact for polynomial
    f up to degree 2n - 1. Returns two float64 tensors [n]."""
    import numpy as np

    x, w = np.polynomial.hermite.hermgauss(n)
    return torch.from_numpy(x * math.sqrt(2.0)), torch.from_numpy(w / math.sqrt(math.pi))


def kl_per_dim_to_mixture(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    means: torch.Tensor,
    logvars: torch.Tensor,
    log_weights: torch.Tensor | None = None,
    nodes: int = 16,
) -> torch.Tensor:
    """KL(N(mu_j, exp(logvar_j)) || p_j) per dimension j, where p_j is the marginal of dimension j of a
    mixture of diagonal Gaussians: p_j(z) = sum_k pi_k N(z; m_kj, exp(v_kj)), pi_k = 1/K unless
    ``log_weights`` ([K] or [B, K]) gives the normalised log pi.

    = -1/2 (1 + log 2pi + logvar_j) - E_q[log p_j(z_j)], the expectation by Gauss-Hermite quadrature
    (``gauss_hermite``; deterministic, no draws). Accurate (1e-3 nats) when the components are about as
    wide as q, as a VampPrior's are (posteriors of the same encoder); components much narrower than q
    make log p_j too peaked for 16 nodes (0.3 nats off at a third of q's width).
    Shapes: mu, logvar [B, D]; means, logvars [B, K, D] (each row's own mixture, e.g. its class's) or
    [K, D] -> [B, D], in nats.
    """
    t, w = (v.to(mu) for v in gauss_hermite(nodes))
    z = mu.unsqueeze(-1) + torch.exp(0.5 * logvar).unsqueeze(-1) * t  # [B, D, n]
    means, logvars = means.expand(len(mu), *means.shape[-2:]), logvars.expand(len(mu), *logvars.shape[-2:])
    m, v = means.transpose(1, 2).unsqueeze(-1), logvars.transpose(1, 2).unsqueeze(-1)  # [B, D, K, 1]
    per_component = -0.5 * (LOG_2PI + v + (z.unsqueeze(2) - m).pow(2) * torch.exp(-v))  # [B, D, K, n]
    if log_weights is None:
        log_marginal = torch.logsumexp(per_component, dim=2) - math.log(means.shape[1])  # [B, D, n]
    else:
        weights = log_weights.to(mu).expand(len(mu), means.shape[1])[:, None, :, None]  # [B, 1, K, 1]
        log_marginal = torch.logsumexp(per_component + weights, dim=2)
    entropy = 0.5 * (1.0 + LOG_2PI + logvar)
    return -entropy - (log_marginal * w).sum(-1)


# ------------------------------------------------------------------------ the aggregate posterior q(z)
# beta-TCVAE (Chen et al. 2018, arXiv:1802.04942) splits the KL term into the index-code mutual
# information, the total correlation TC = KL(q(z) || prod_j q(z_j)) and the dimension-wise KL, which
# need the aggregate posterior q(z) = 1/N sum_n q(z | x_n), estimated from a minibatch.


def stratified_log_weights(batch: int, dataset_size: int) -> torch.Tensor:
    """log r_ij of q(z_i) ~= sum_j r_ij q(z_i | x_j), the minibatch stratified sampling estimate (Chen et
    al. 2018, sec. 3 and appendix C.2) for a batch of B images drawn without replacement from N.

    z_i was drawn from x_i itself, so that term carries its exact share r_ii = 1/N; the other B - 1 images
    stand for the other N - 1, r_ij = (N - 1) / (N (B - 1)). Then E[sum_j r_ij q(z_i | x_j)] = q(z_i)
    exactly, and the weights of a row sum to 1 (B >= 2); with B = N it is the exact aggregate posterior.
    Shapes: -> [B, B] (float64 logs). B = 1 leaves only r_ii = 1/N (beta-TCVAE then uses the ELBO).
    """
    if batch > dataset_size:
        raise ValueError(f"a batch of {batch} cannot come from {dataset_size} images")
    other = math.log(dataset_size - 1) - math.log(dataset_size * (batch - 1)) if batch > 1 else -math.inf
    weights = torch.full((batch, batch), other, dtype=torch.float64)
    weights.fill_diagonal_(-math.log(dataset_size))
    return weights


def aggregate_log_densities(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, weighted: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimates of log q(z_i) and of sum_j log q(z_ij) (the product of the marginals) at each image's own
    draw z_i, from the batch's diagonal Gaussian posteriors (``stratified_log_weights``).

    ``weighted``: minibatch weighted sampling instead (Chen et al. 2018, sec. 4.1, and their code), every
    r_ij = 1/(N B): z_i's own posterior weighs as any other, and a row sums to 1/N, not 1, so log q(z)
    comes out about log N low and the total correlation of D dimensions about (D - 1) log N high,
    constants that leave the gradients unchanged. Shapes: z, mu, logvar [B, D] -> ([B], [B]), in nats.
    """
    pair = -0.5 * (
        LOG_2PI + logvar.unsqueeze(0) + (z.unsqueeze(1) - mu.unsqueeze(0)).pow(2) * torch.exp(-logvar)
    )
    batch = len(z)
    if weighted:
        weights = z.new_full((batch, batch, 1), -math.log(dataset_size * batch))
    else:
        weights = stratified_log_weights(batch, dataset_size).to(z).unsqueeze(-1)  # [B, B, 1]
    log_qz = torch.logsumexp(pair.sum(-1, keepdim=True) + weights, dim=1).squeeze(-1)
    log_marginals = torch.logsumexp(pair + weights, dim=1).sum(-1)
    return log_qz, log_marginals


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each dimension's values shuffled across the batch on its own: draws from prod_j q(z_j) when z are
    draws from q(z) (Kim & Mnih 2018, arXiv:1802.05983, algorithm 1). Shapes: [B, D] -> [B, D]."""
    order = torch.argsort(torch.rand(z.shape, generator=generator, device=z.device), dim=0)
    return z.gather(0, order)


# ------------------------------------------------------------------------ moments and kernel distances


def covariance(x: torch.Tensor) -> torch.Tensor:
    """The batch covariance E[(x - E x)(x - E x)^T] (divided by B, as DIP-VAE's). [B, D] -> [D, D]."""
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / len(x)


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """DIP-VAE's regulariser (Kumar et al. 2018, arXiv:1711.00848, eq. 6):
    lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2, pushing a covariance towards I.
    Shapes: cov [D, D] -> a scalar."""
    diagonal = torch.diagonal(cov)
    off_diagonal = cov - torch.diag(diagonal)
    return lambda_od * off_diagonal.pow(2).sum() + lambda_d * (diagonal - 1.0).pow(2).sum()


IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_mmd(x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = IMQ_SCALES) -> torch.Tensor:
    """The unbiased estimate of MMD^2 between the distributions of x and y (Gretton et al. 2012, eq. 3)
    under the inverse multiquadratic kernel k(a, b) = C / (C + |a - b|^2), summed over C = 2 D s for each
    scale s (WAE, Tolstikhin et al. 2018, sec. 4; InfoVAE, Zhao et al. 2019, uses the same distance):

    MMD^2 = 1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j) - 2/(nm) sum_ij k(x_i, y_j).
    Shapes: x [n, D], y [m, D] (n, m >= 2) -> a scalar.
    """
    n, m, dim = len(x), len(y), x.shape[1]

    def kernel_sum(a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        # squared distances by the expansion, not cdist: its square root has no gradient at 0
        distances = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2.0 * a @ b.T).clamp(min=0.0)
        total = sum(2.0 * dim * s / (2.0 * dim * s + distances) for s in scales)
        return total.sum() - (total.diagonal().sum() if same else 0.0)

    return (
        kernel_sum(x, x, True) / (n * (n - 1))
        + kernel_sum(y, y, True) / (m * (m - 1))
        - 2.0 * kernel_sum(x, y, False) / (n * m)
    )


def gaussian_kl_between(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL( N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)) ) per element:
    1/2 (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1).

    The KL of two diagonal Gaussians, a hierarchical VAE's group term (Sønderby et al. 2016, eq. 16;
    Vahdat & Kautz 2020, eq. 2). Shapes broadcast, no reduction; nats.
    """
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0)

"""An exact Gaussian prior N(mu, diag(s²)): closed-form teacher, generative denoiser and posteriors (docs/method.md §10).

With this prior every quantity the samplers approximate is known exactly, so the tests of the whole project use it:
- teacher D(x, sigma) = E[x0 | x0 + sigma * eps = x] = m,
- generative denoiser G(y, sigma) ~ N(m, v) per pixel, v = (1/s² + 1/sigma²)^-1, m = v (mu / s² + y / sigma²),
- the posterior of x0 given y = A x0 + sigma_y * n for a linear A written as a dense matrix.

>>> prior = GaussianPrior(0.0, 0.5)
>>> float(prior.teacher(torch.ones(1, 1, 1, 1), 0.5))
0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from operators.noise import Generators, randn, randn_like


def _sigma_view(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sigma as a tensor broadcastable to x (B, C, H, W): float, 0-d, or (B,) tensors are accepted; sigma > 0."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 1:
        sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    if (sigma <= 0).any():
        raise ValueError(f"sigma must be > 0, got {sigma.flatten().tolist()}")
    return sigma


class GaussianPrior:
    """Per-pixel independent prior N(mu, s²); mu and s are floats or tensors broadcastable to (C, H, W), s > 0.

    Call signatures match the network contracts (docs/architecture.md): `teacher(x, sigma, class_labels=None)` and
    `denoiser(y, sigma, generator=None, class_labels=None)`, sigma a float or (B,) tensor; class labels are ignored.
    """

    sigma_data = 0.5
    label_dim = 0

    def __init__(self, mu: float | torch.Tensor = 0.0, s: float | torch.Tensor = 0.5):
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        self.s = torch.as_tensor(s, dtype=torch.float64)
        if (self.s <= 0).any():
            raise ValueError(f"prior std s must be > 0, got {self.s.flatten().tolist()[:4]}")

    def _moments(self, y: torch.Tensor, sigma: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, v) of p(x0 | x0 + sigma * eps = y), in y's dtype."""
        sig = _sigma_view(sigma, y)
        mu, s2 = self.mu.to(y), self.s.to(y) ** 2
        v = 1.0 / (1.0 / s2 + 1.0 / sig**2)
        return v * (mu / s2 + y / sig**2), v

    def teacher(self, x: torch.Tensor, sigma: float | torch.Tensor, class_labels=None) -> torch.Tensor:
        """Exact E[x0 | x] at noise level sigma (docs/method.md §10)."""
        return self._moments(x, sigma)[0]

    def denoiser(self, y: torch.Tensor, sigma: float | torch.Tensor, generator: Generators = None,
                 class_labels=None) -> torch.Tensor:
        """One exact sample of p(x0 | y_sigma = y) (docs/method.md §10), noise from `generator`."""
        m, v = self._moments(y, sigma)
        return m + v.sqrt() * randn_like(y, generator)

    def sample(self, shape: Sequence[int], generator: Generators = None) -> torch.Tensor:
        """Samples of the prior itself, of shape (B, C, H, W)."""
        z = randn(shape, generator)
        return self.mu.to(z) + self.s.to(z) * z

    # --- dense-matrix helpers for tests ----------------------------------------------------------------------
    def flat_moments(self, image_shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior mean (D,) and variance (D,) flattened in (C, H, W) order, float64."""
        shape = tuple(image_shape)
        return (self.mu.expand(shape).reshape(-1).clone(), (self.s**2).expand(shape).reshape(-1).clone())

    def posterior(self, A: torch.Tensor, y: torch.Tensor, sigma_y: float, image_shape: Sequence[int],
                  smoothing_sigma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior of x0 given y = A x0 + n, n ~ N(0, sigma_y² I + smoothing_sigma² A Aᵀ) (float64).

        A: (M, D) dense matrix (see `operator_matrix`), y: (M,) or (B, M) flattened measurements, sigma_y > 0.
        smoothing_sigma > 0 gives the x0-marginal of PnP-GD's split-Gibbs target at that sigma (docs/method.md §10).
        Returns (mean (B, D) or (D,), covariance (D, D)); covariance S - S Aᵀ (A S Aᵀ + N)^-1 A S, S = diag(s²).
        """
        A = A.to(torch.float64)
        m0, s2 = self.flat_moments(image_shape)
        if A.shape[1] != m0.numel():
            raise ValueError(f"A has {A.shape[1]} columns but the image has {m0.numel()} pixels")
        noise = sigma_y**2 * torch.eye(A.shape[0], dtype=torch.float64) + smoothing_sigma**2 * A @ A.T
        SAt = s2[:, None] * A.T                                     # S Aᵀ, (D, M)
        gain = torch.linalg.solve(A @ SAt + noise, SAt.T).T          # S Aᵀ (A S Aᵀ + N)^-1, (D, M)
        cov = torch.diag(s2) - gain @ SAt.T
        resid = y.to(torch.float64) - m0 @ A.T                       # (.., M)
        return m0 + resid @ gain.T, cov


def operator_matrix(operator, image_shape: Sequence[int] | None = None) -> torch.Tensor:
    """Dense (M, D) float64 matrix of a linear operator, built by applying `forward` to the identity basis."""
    shape = tuple(image_shape or operator.image_shape)
    d = 1
    for n in shape:
        d *= int(n)
    basis = torch.eye(d, dtype=torch.float32).reshape(d, *shape)
    with torch.no_grad():
        cols = operator.forward(basis).reshape(d, -1)
    return cols.T.to(torch.float64)

"""The principal-axes map of a layer: from its standardised features to whitened leading axes of their covariance."""

from __future__ import annotations

import torch

LOW_RANK_MIN_FEATURES = 1024
"""Layers at least this wide whose axes are capped far below their width get their leading axes by subspace
iteration instead of a full eigendecomposition (seconds per layer at 2304 features, e.g. a ViT-B/16 block)."""
LOW_RANK_RATIO = 8
"""... when the axis cap is at most ``features / LOW_RANK_RATIO``."""


def principal_axes(covariance: torch.Tensor, var: torch.Tensor, variance_share: float, max_axes: int) -> torch.Tensor:
    """``(features, axes)`` map from standardised features to whitened principal axes (unit variance each).

    The axes are the leading eigenvectors of the standardised features' covariance (their correlation matrix, with
    the floored variances) that explain ``variance_share`` of the total, at most ``max_axes``: a few estimated axes
    per sample would whiten noise. Dividing by the root eigenvalue makes a shift along a quiet axis count as much as
    one along a loud axis, which is what catches low-rank changes (a brightness offset, a broken patch embedding).

    Wide layers with few allowed axes (a small calibration of a large model) need only the leading ``max_axes``
    eigenpairs; they come from a seeded subspace iteration. Any map keeps the statistic calibrated, since its null
    is resampled through the same map; the iteration only has to find the loud directions.
    """
    scale = var.rsqrt()
    standardised = covariance * scale[:, None] * scale[None, :]
    n_features = standardised.shape[0]
    if n_features >= LOW_RANK_MIN_FEATURES and max_axes * LOW_RANK_RATIO <= n_features:
        eigenvalues, eigenvectors = _leading_eigenpairs(standardised, max_axes + 16)
        total = torch.diagonal(standardised).sum()
    else:
        eigenvalues, eigenvectors = torch.linalg.eigh(standardised)
        eigenvalues, eigenvectors = eigenvalues.flip(0).clamp_min(0.0), eigenvectors.flip(1)
        total = eigenvalues.sum()
    share = eigenvalues.cumsum(0) / total.clamp_min(1e-30)
    n_axes = int((share < variance_share).sum()) + 1
    n_axes = min(n_axes, max_axes, int((eigenvalues > 1e-9 * eigenvalues[0]).sum()))
    n_axes = max(n_axes, 1)
    return (eigenvectors[:, :n_axes] / eigenvalues[:n_axes].clamp_min(1e-30).sqrt()).float()


def _leading_eigenpairs(matrix: torch.Tensor, k: int, iterations: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest eigenvalues (descending, clamped at 0) and eigenvectors of a symmetric PSD matrix, by
    subspace iteration from a fixed random start (Halko, Martinsson & Tropp 2011, algorithm 4.4)."""
    k = min(k, matrix.shape[0])
    start = torch.randn(matrix.shape[0], k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    basis = torch.linalg.qr(matrix @ start.to(matrix)).Q
    for _ in range(iterations):
        basis = torch.linalg.qr(matrix @ basis).Q
    eigenvalues, rotation = torch.linalg.eigh(basis.T @ matrix @ basis)
    return eigenvalues.flip(0).clamp_min(0.0), (basis @ rotation).flip(1)

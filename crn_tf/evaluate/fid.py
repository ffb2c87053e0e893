"""Fréchet distance (FID) and kernel distance (KID) between two sets of image features.

FID follows the reference TensorFlow code (bioinf-jku/TTUR `fid.py`): fit a Gaussian to each
feature set and compute ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)) with `scipy.linalg.sqrtm`,
adding eps to the diagonals when the product is singular and dropping a negligible imaginary part.
KID (Binkowski et al., ICLR 2018) is the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


class FIDError(ValueError):
    """The statistics cannot give a Fréchet distance (mismatched shapes, complex square root)."""


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [d] and covariance [d, d] (unbiased, rows = samples) of features [n, d], in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise FIDError(f"features must be [num_images, dims], got shape {features.shape}")
    if features.shape[0] < 2:
        raise FIDError(f"need at least 2 images to estimate a covariance, got {features.shape[0]}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    imaginary_tolerance: float = 1e-3,
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Safeguards, as in the reference code: if sqrtm(sigma1 @ sigma2) is not finite (a singular
    product), eps is added to both diagonals and the root recomputed; a complex result whose
    diagonal has an imaginary part above `imaginary_tolerance` raises FIDError, otherwise its real
    part is used.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise FIDError(f"mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise FIDError(f"covariances {sigma1.shape} and {sigma2.shape} do not match means of length {mu1.shape[0]}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular covariance product; adding {eps} to the diagonals", RuntimeWarning)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        residue = np.max(np.abs(np.diagonal(covmean).imag))
        if residue > imaginary_tolerance:
            raise FIDError(f"FID: sqrtm of the covariance product has an imaginary part of {residue:.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy warns on singular input; the caller checks finiteness
        root = linalg.sqrtm(matrix)
    return root[0] if isinstance(root, tuple) else root


def fid_from_features(features1: np.ndarray, features2: np.ndarray, eps: float = 1e-6) -> float:
    """FID between two feature sets [n1, d] and [n2, d]."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2), eps=eps)


def polynomial_mmd2(features1: np.ndarray, features2: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^degree between samples [m, d] and [n, d]."""
    x = np.asarray(features1, np.float64)
    y = np.asarray(features2, np.float64)
    m, n, dims = x.shape[0], y.shape[0], x.shape[1]
    if m < 2 or n < 2:
        raise FIDError(f"KID needs at least 2 images per set, got {m} and {n}")
    k_xx = (x @ x.T / dims + 1.0) ** degree
    k_yy = (y @ y.T / dims + 1.0) ** degree
    k_xy = (x @ y.T / dims + 1.0) ** degree
    return float(
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        - 2.0 * k_xy.mean()
    )


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over random subsets.

    Each subset draws `min(subset_size, n1, n2)` images from each set without replacement
    (the usual 100 subsets of 1000); `seed` makes the draw reproducible.
    """
    x = np.asarray(features1, np.float64)
    y = np.asarray(features2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise FIDError(f"feature sets must be [n, d] with the same d, got {x.shape} and {y.shape}")
    size = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            polynomial_mmd2(x[rng.choice(x.shape[0], size, replace=False)], y[rng.choice(y.shape[0], size, replace=False)])
            for _ in range(num_subsets)
        ]
    )
    return float(values.mean()), float(values.std())

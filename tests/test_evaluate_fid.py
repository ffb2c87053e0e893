"""crn_tf.evaluate.fid: FID and KID maths against direct SciPy/NumPy computations."""

import numpy as np
import pytest
from scipy import linalg

from crn_tf.evaluate.fid import (
    FIDError,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    polynomial_mmd2,
)


def _random_covariance(rng, dims):
    a = rng.normal(size=(dims, dims))
    return a @ a.T / dims + 0.1 * np.eye(dims)


def _direct_frechet(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2): the symmetric form, another route."""
    root1 = linalg.sqrtm(s1).real
    middle = linalg.sqrtm(root1 @ s2 @ root1).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(middle))


def test_frechet_distance_of_known_gaussians(rng):
    dims = 6
    mu1, mu2 = rng.normal(size=dims), rng.normal(size=dims)
    s1, s2 = _random_covariance(rng, dims), _random_covariance(rng, dims)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_direct_frechet(mu1, s1, mu2, s2), rel=1e-9)
    # Diagonal covariances: the closed form sum (sqrt(a) - sqrt(b))^2 + ||mu1 - mu2||^2.
    a, b = rng.uniform(0.5, 2, dims), rng.uniform(0.5, 2, dims)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_fid_from_samples_matches_scipy_and_is_zero_for_identical_sets(rng):
    x = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    y = rng.normal(loc=0.5, size=(300, 8))
    mu_x, s_x = feature_statistics(x)
    np.testing.assert_allclose(mu_x, x.mean(0))
    np.testing.assert_allclose(s_x, np.cov(x.T))
    expected = _direct_frechet(x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert fid_from_features(x, y) == pytest.approx(expected, rel=1e-8)
    assert abs(fid_from_features(x, x)) < 1e-8
    assert fid_from_features(x, y) > 0.1


def test_singular_covariances_stay_finite(rng):
    x, y = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))  # 5 samples in 20-d: rank-4 covariances
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value)
    assert value == pytest.approx(_direct_frechet(mu1, s1, mu2, s2), rel=1e-4)


def test_non_finite_root_retries_with_eps_on_the_diagonals(rng, monkeypatch):
    import crn_tf.evaluate.fid as fid

    seen = []
    real_sqrtm = fid._sqrtm

    def failing_once(matrix):
        seen.append(matrix.copy())
        return np.full_like(matrix, np.nan) if len(seen) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid, "_sqrtm", failing_once)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = _random_covariance(rng, 4), _random_covariance(rng, 4)
    with pytest.warns(RuntimeWarning, match="singular"):
        value = fid.frechet_distance(mu1, s1, mu2, s2, eps=1e-2)
    offset = 1e-2 * np.eye(4)
    np.testing.assert_allclose(seen[1], (s1 + offset) @ (s2 + offset))
    root = real_sqrtm((s1 + offset) @ (s2 + offset)).real
    assert value == pytest.approx(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def test_complex_residue_and_shape_errors():
    with pytest.raises(FIDError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(FIDError, match="differ in length"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(FIDError, match="at least 2"):
        feature_statistics(np.zeros((1, 4)))


def test_kid_is_the_unbiased_polynomial_mmd(rng):
    x, y = rng.normal(size=(7, 5)), rng.normal(loc=0.3, size=(9, 5))

    def k(a, b):
        return (a @ b / 5 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    same = kernel_inception_distance(rng.normal(size=(200, 5)), rng.normal(size=(200, 5)), num_subsets=20, subset_size=100)
    shifted = kernel_inception_distance(rng.normal(size=(200, 5)), rng.normal(1.0, size=(200, 5)), num_subsets=20, subset_size=100)
    assert abs(same[0]) < 3 * same[1] + 1e-3 and shifted[0] > 10 * abs(same[0])
    again = kernel_inception_distance(x, y, num_subsets=5, subset_size=5, seed=3)
    assert again == kernel_inception_distance(x, y, num_subsets=5, subset_size=5, seed=3)

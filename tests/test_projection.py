import numpy as np
import pytest

from backends.projection import MIN_POINTS_FOR_UMAP, pca_2d, project_2d


def test_pca_recovers_the_dominant_axis():
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    points = np.stack([t * 10, rng.normal(size=50) * 0.1, rng.normal(size=50) * 0.1], axis=1)
    coords = pca_2d(points)
    assert coords.shape == (50, 2)
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.99


def test_few_points_fall_back_to_pca_and_bad_input_is_refused():
    coords, how = project_2d(np.eye(5))
    assert coords.shape == (5, 2) and how.startswith("PCA")
    assert pca_2d(np.ones((1, 4))).shape == (1, 2)
    with pytest.raises(ValueError):
        project_2d(np.zeros((0, 3)))


def test_umap_separates_two_clusters():
    rng = np.random.default_rng(1)
    n = MIN_POINTS_FOR_UMAP
    a = rng.normal(size=(n, 8)) + 5
    b = rng.normal(size=(n, 8)) - 5
    coords, how = project_2d(np.concatenate([a, b]))
    assert how == "UMAP" and coords.shape == (2 * n, 2)
    gap = np.linalg.norm(coords[:n].mean(0) - coords[n:].mean(0))
    spread = max(coords[:n].std(0).max(), coords[n:].std(0).max())
    assert gap > 2 * spread

"""2-D projections for embedding maps: UMAP when there are enough points, PCA otherwise.

umap-learn (and its numba JIT) is imported lazily; :func:`warm_up_umap` compiles it once in the
background at app start so the first map a visitor asks for does not stall.
"""
from __future__ import annotations

import threading

import numpy as np

#: Below this many points UMAP's neighbour graph is meaningless; PCA is used instead.
MIN_POINTS_FOR_UMAP = 20

_warm = threading.Event()


def pca_2d(points: np.ndarray) -> np.ndarray:
    """First two principal components of (N, D) points -> (N, 2); zero-padded when D or N < 2."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("need a non-empty (N, D) array of points")
    x = x - x.mean(axis=0, keepdims=True)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:2].T                           # (N, <=2)
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords


def umap_2d(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP (McInnes et al., 2018) of (N, D) points -> (N, 2), cosine metric, seeded."""
    import umap

    x = np.asarray(points, dtype=np.float32)
    n_neighbors = int(min(15, max(2, len(x) - 1)))
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=0.1, metric="cosine",
                        random_state=seed, init="spectral" if len(x) > n_neighbors + 2 else "random")
    return reducer.fit_transform(x)


def project_2d(points: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """Project (N, D) points to (N, 2); returns the coordinates and the method used."""
    x = np.asarray(points)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("need a non-empty (N, D) array of points to draw a map")
    if len(x) < MIN_POINTS_FOR_UMAP:
        return pca_2d(x), f"PCA (UMAP needs at least {MIN_POINTS_FOR_UMAP} points)"
    return umap_2d(x, seed), "UMAP"


def warm_up_umap(background: bool = True) -> threading.Thread | None:
    """Run UMAP once on random points so numba compiles before the first real map."""
    def work() -> None:
        try:
            umap_2d(np.random.default_rng(0).normal(size=(MIN_POINTS_FOR_UMAP + 10, 8)))
        finally:
            _warm.set()

    if _warm.is_set():
        return None
    if not background:
        work()
        return None
    thread = threading.Thread(target=work, name="umap-warm-up", daemon=True)
    thread.start()
    return thread

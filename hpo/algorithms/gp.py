"""The Gaussian-process pieces of `bayesian` and `bfbo`, in the unit cube (scores: higher is better).

sklearn's GaussianProcessRegressor with normalised targets; acquisition maximised by scoring random
and near-observation candidates, then refining around the best few (TAO polishes 5 starts with L-BFGS-B).
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

_CANDIDATES = 512
_POLISHED = 5


def fit(x: np.ndarray, y: np.ndarray, *, kernel: str, seed: int, restarts: int = 1):
    """A GP on (x, y). `kernel`: "matern" (constant x Matern 5/2, ARD; bayesian) or "rbf" (bfbo)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern

    dim = x.shape[1]
    if kernel == "matern":
        base = Matern(length_scale=np.full(dim, 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5)
    else:
        base = RBF(length_scale=0.3, length_scale_bounds=(1e-2, 1e2))
    model = GaussianProcessRegressor(ConstantKernel(1.0, (1e-3, 1e3)) * base, alpha=1e-6, normalize_y=True,
                                     n_restarts_optimizer=restarts, random_state=int(seed),
                                     optimizer=_bounded_lbfgs)
    from threadpoolctl import threadpool_limits

    # tiny matrices: BLAS threads only add contention (several times slower on a loaded 2-core box)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny data sets hit the bounds: harmless
        model.fit(x, y)
    return model


def _bounded_lbfgs(objective, theta, bounds):
    """sklearn's marginal-likelihood fit with an iteration cap: hyperparameters need not be exact,
    and uncapped fits dominated proposal time (about 1 s each on a shared 2-core machine)."""
    found = minimize(objective, theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 40})
    return found.x, found.fun


def expected_improvement(model, points: np.ndarray, best: float, xi: float) -> np.ndarray:
    mu, sd = model.predict(points, return_std=True)
    sd = np.maximum(sd, 1e-12)
    improvement = mu - best - xi
    z = improvement / sd
    return improvement * norm.cdf(z) + sd * norm.pdf(z)


def ucb(model, points: np.ndarray, kappa: float) -> np.ndarray:
    mu, sd = model.predict(points, return_std=True)
    return mu + kappa * sd


def candidates(x: np.ndarray, rng: np.random.Generator, n: int = _CANDIDATES) -> np.ndarray:
    """Uniform points plus a quarter near the observed points (where EI's peaks usually are)."""
    dim = x.shape[1]
    uniform = rng.random((n, dim))
    near = x[rng.integers(len(x), size=n // 4)] + rng.normal(scale=0.05, size=(n // 4, dim)) if len(x) else \
        rng.random((n // 4, dim))
    return np.clip(np.vstack([uniform, near]), 0.0, 1.0)


def maximise(acquisition: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """The best point found: candidates scored in one batch, then a second batch of small steps
    around the best few (two vectorised model calls: cheap enough for hundreds of proposals)."""
    points = candidates(x, rng)
    values = acquisition(points)
    top = points[np.argsort(-values)[:_POLISHED]]
    local = np.clip(np.repeat(top, _CANDIDATES // _POLISHED, axis=0)
                    + rng.normal(scale=0.02, size=(_CANDIDATES // _POLISHED * len(top), x.shape[1])), 0.0, 1.0)
    points, values = np.vstack([points, local]), np.concatenate([values, acquisition(local)])
    return points[int(np.argmax(values))]


def penalised_batch(model, x: np.ndarray, y: np.ndarray, kappa: float, size: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """`size` points by greedy local penalisation (Gonzalez et al. 2016): after each pick x_j, the
    acquisition is multiplied by P(|x - x_j| L >= M - mu(x_j)), the probability that x lies outside
    the ball x_j's value rules out, with L a Lipschitz estimate of the GP mean and M the best score."""
    points = candidates(x, rng, n=2 * _CANDIDATES)
    mu, sd = model.predict(points, return_std=True)
    acquisition = mu + kappa * sd
    positive = acquisition - acquisition.min() + 1e-9  # the penalty multiplies: keep it positive
    lipschitz = _lipschitz(model, points[:128])
    best = float(y.max())
    picks: list[np.ndarray] = []
    for _ in range(size):
        j = int(np.argmax(positive))
        picks.append(points[j].copy())
        distance = np.linalg.norm(points - points[j], axis=1)
        positive = positive * norm.cdf((lipschitz * distance - (best - mu[j])) / max(sd[j], 1e-9))
        positive[j] = 0.0
    return picks


def _lipschitz(model, points: np.ndarray, step: float = 1e-3) -> float:
    """The largest gradient norm of the GP mean over `points` (finite differences), floored."""
    base = model.predict(points)
    grads = []
    for d in range(points.shape[1]):
        shifted = points.copy()
        shifted[:, d] = np.minimum(shifted[:, d] + step, 1.0)
        grads.append((model.predict(shifted) - base) / step)
    return max(float(np.linalg.norm(np.array(grads), axis=0).max()), 1e-7)

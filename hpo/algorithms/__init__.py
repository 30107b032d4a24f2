"""TAO's AutoML algorithms on Ray Tune, behind one interface (hpo.algorithms.base.Algorithm).

    from hpo.algorithms import make_algorithm, metric_mode
    alg = make_algorithm(automl.algorithm, space, automl, metric, mode, seed)

Searchers: hpo.algorithms.searchers; schedulers: hpo.algorithms.schedulers; the score and best-trial
rule: hpo.algorithms.scoring; a simulated-time backend (no Ray runtime): hpo.algorithms.simulator.
"""
from hpo.algorithms.base import FIDELITY_ATTR, Algorithm
from hpo.algorithms.registry import ALGORITHMS, make_algorithm
from hpo.algorithms.scoring import best_trial, metric_mode, trial_score

__all__ = ["ALGORITHMS", "Algorithm", "FIDELITY_ATTR", "best_trial", "make_algorithm", "metric_mode",
           "trial_score"]

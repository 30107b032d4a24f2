"""The search space: from a (TAO or our) train schema + the spec's `automl` section to a `SearchSpace`.

Public API (what the algorithms, the sweep and the CLI use):

    space = build_search_space(cfg, schema=None, exclude=(), epochs_are_fidelity=False, user_spec=None)
    space.params / space.names / space.dim            # topologically ordered Params
    space.sample(rng) -> dict                           # flat dotted config, constraints hold
    space.sample_trial(seed, i) -> dict                 # rng = SeedSequence((seed, i))
    space.to_unit(config) -> ndarray[dim]; space.from_unit(u) -> dict
    space.is_feasible(config) / space.validate(config)  # SpecError(key=param) when infeasible
    space.active(config)                                # drops inactive conditional params
    space.perturb(config, rng, factor=1.2, resample_prob=0.2)   # PBT explore
    space.grid(points_per_dim) -> list[dict]
    hpo.space.adapters: suggest_optuna(space, trial), hyperopt_space(space), decode_hyperopt(space, sample)
    space.table() -> list[dict]; render_table(space) -> str; space.excluded (not searched, and why)
    space.apply(spec_dict, flat, trial_epochs=None) -> dict
    space.without(names) -> SearchSpace                 # e.g. drop train.num_epochs for epoch fidelity
    apply_config(spec_dict, flat) -> dict;  apply_epoch_budget(spec_dict, epochs) -> dict
    scale_lr_steps(lr_steps, num_epochs_spec, trial_epochs) -> list[int]
"""
from __future__ import annotations

from hpo.space.apply import apply_config, apply_epoch_budget, scale_lr_steps
from hpo.space.domains import BoolDomain, CategoricalDomain, Domain, EmptyDomain, FloatDomain, IntDomain
from hpo.space.space import Condition, Excluded, Param, Relation, SearchSpace, trial_rng

__all__ = [
    "BoolDomain", "CategoricalDomain", "Condition", "Domain", "EmptyDomain", "Excluded", "FloatDomain",
    "IntDomain", "Param", "Relation", "SearchSpace", "apply_config", "apply_epoch_budget",
    "build_search_space", "render_table", "scale_lr_steps", "trial_rng", "EPOCH_PARAMS",
]


def __getattr__(name: str):  # the builder pulls in the schema reader; keep `import hpo.space` light
    if name in {"build_search_space", "EPOCH_PARAMS"}:
        from hpo.space import build

        return getattr(build, name)
    if name == "render_table":
        from hpo.space.table import render_table

        return render_table
    raise AttributeError(name)

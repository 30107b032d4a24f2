"""Our own spec sections (not TAO's): `automl` (search, budgets, algorithm knobs) and `mlflow`.

TAO's AutoML knob names and defaults carry over (notes/tao.md §3.1: max_recommendations 20,
max_epochs R=27, reduction_factor eta=3, epoch_multiplier 1, PBT population 10 / interval 10, ...).
Unknown keys are rejected (`extra="forbid"`): TAO learnt that a typo'd budget key silently runs defaults.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

ALGORITHMS = ("bayesian", "hyperband", "bohb", "bfbo", "asha", "pbt", "dehb", "hyperband_es",
              "random", "grid", "tpe")
# algorithms whose fidelity is the epoch budget: they never also search train.num_epochs
EPOCH_FIDELITY_ALGORITHMS = frozenset({"hyperband", "bohb", "asha", "pbt", "dehb", "hyperband_es"})
Algorithm = Literal["bayesian", "hyperband", "bohb", "bfbo", "asha", "pbt", "dehb", "hyperband_es",
                    "random", "grid", "tpe"]
# the one bench/search.py's figures support against the peers at 1 and 4 workers (issue 14, bench/README.md)
DEFAULT_ALGORITHM: Algorithm = "tpe"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RangeOverride(_Strict):
    """One entry of TAO's `automl_range_override`: overrides a parameter's search metadata."""

    parameter: str = Field(description="dotted name of the parameter, e.g. train.optim.lr")
    valid_min: Optional[float] = None
    valid_max: Optional[float] = None
    valid_options: Optional[list[Any]] = None
    option_weights: Optional[list[float]] = None
    math_cond: Optional[str] = None
    depends_on: Optional[str] = None
    parent_param: Optional[bool] = None
    disable_list: Optional[list[Any]] = Field(default=None, description="options to exclude from valid_options")
    log_scale: Optional[bool] = Field(default=None, description="ours: search on a log scale")


class AutoMLConfig(_Strict):
    """Search space selection, algorithm and its knobs, budgets, fault tolerance, promotion."""

    # --- algorithm and objective
    algorithm: Algorithm = Field(default=DEFAULT_ALGORITHM, description="TAO AutoML algorithm name")
    metric: str = Field(default="val_mAP50", description="metric to optimise; names containing 'loss' are minimised")
    seed: int = Field(default=42, description="sweep seed; trial i samples from SeedSequence((seed, i))")

    # --- which parameters are searched, and how (hpo.space)
    space_mode: Literal["default", "tao"] = Field(
        default="default",
        description="'tao' reproduces TAO's effective ranges; 'default' uses log-scaled finite ranges")
    hyperparameters: Optional[list[str]] = Field(
        default=None, description="parameters to search; default: the schema's automl_default_parameters")
    add_hyperparameters: list[str] = Field(default_factory=list)
    remove_hyperparameters: list[str] = Field(default_factory=list)
    override_automl_disabled_params: bool = False
    range_override: list[RangeOverride] = Field(default_factory=list)
    schema_path: Optional[str] = Field(default=None, description="train schema to derive the space from; default: ours")

    # --- budgets (the sweep stops at the first one reached)
    max_recommendations: int = Field(default=20, ge=1, description="number of trials (non-Hyperband algorithms)")
    max_epochs: int = Field(default=27, ge=2, description="R: the largest epoch budget of one trial")
    reduction_factor: int = Field(default=3, ge=2, description="eta of Hyperband/ASHA/BOHB/DEHB")
    epoch_multiplier: int = Field(default=1, ge=1, description="scales every rung's epoch budget")
    time_budget_s: Optional[float] = Field(default=None, gt=0, description="wall-clock budget of the sweep")
    gpu_hours: Optional[float] = Field(default=None, gt=0,
                                       description="sum of GPUs x trial wall time (CPU-hours on CPU)")
    target_metric: Optional[float] = Field(default=None, description="stop once a trial reaches this score")
    no_improvement_trials: Optional[int] = Field(default=None, ge=1,
                                                 description="stop after N finished trials without a new best")
    max_trials: Optional[int] = Field(default=None, ge=1, description="ASHA: cap on trials started")

    # --- algorithm knobs (TAO's names and defaults)
    population_size: int = Field(default=10, ge=2)
    max_generations: int = Field(default=20, ge=1)
    eval_interval: int = Field(default=10, ge=1, description="PBT: epochs between exploit/explore steps")
    perturbation_factor: float = Field(default=1.2, ge=1, le=10)
    mutation_factor: float = Field(default=0.5, ge=0, le=2)
    crossover_prob: float = Field(default=0.5, ge=0, le=1)
    early_stop_threshold: float = Field(default=0.1, ge=0, le=1)
    min_early_stop_epochs: int = Field(default=3, ge=1)
    kde_samples: int = Field(default=64, ge=1)
    top_n_percent: float = Field(default=15, ge=0, le=100)
    min_points_in_model: int = Field(default=10, ge=1)
    min_top_configs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=4, ge=1, description="bfbo: proposals per batch")
    sequential: Optional[bool] = Field(default=None, description="bayesian: one trial at a time (TAO: yes)")
    searcher: Optional[Literal["random", "tpe", "kde"]] = Field(
        default=None, description="asha: how configs are sampled (default random)")

    # --- execution
    max_concurrent: Optional[int] = Field(default=None, ge=1,
                                          description="concurrent trials; default: capped by the limiting resource")
    cpus_per_worker: float = Field(default=0.9, gt=0, description="CPUs per Train worker (leave room for the driver)")
    cpu_workers: int = Field(default=1, ge=1, description="Train workers per trial when no GPU is used")
    trial_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each training process of a trial asks for, e.g. {gpu_node: 1}: "
                    "pins trials (and the promotion task) to the nodes that offer them")
    ray_address: Optional[str] = Field(default=None, description="Ray cluster to use; default: a local instance")
    storage_path: Optional[str] = Field(default=None, description="sweep storage; default <results_dir>/automl")
    keep_checkpoints: int = Field(default=2, ge=1, description="checkpoints kept per trial, by metric")
    delete_intermediate_ckpt: bool = Field(
        default=True, description="after the sweep, finished trials other than the best keep no checkpoint")
    max_disk_gb: Optional[float] = Field(
        default=None, gt=0, description="stop the sweep (cleanly, with a message) before its directory "
                                        "holds more than this many GB")

    # --- fault tolerance
    max_failures: int = Field(default=2, ge=0, description="worker failures retried from the last checkpoint")
    fail_fast_trials: int = Field(default=3, ge=1,
                                  description="stop if the first k trials all fail with the same error")
    stale_timeout_s: float = Field(default=1800, gt=0,
                                   description="stop a trial that reports nothing for this long")

    # --- promotion
    promote: bool = True
    baseline_trial: bool = Field(
        default=True, description="ours: run the spec as written as the sweep's first trial (marked 'baseline'; "
        "counted in the trial budget, or an extra full-budget trial for Hyperband-style schedulers), so the "
        "sweep never returns a configuration worse than the user's own; false turns it off")
    registered_model_name: str = "grounding_dino"


class MLflowConfig(_Strict):
    tracking_uri: Optional[str] = Field(
        default=None, description="default sqlite:///<results_dir>/mlflow.db; any mlflow server URL works")
    experiment_name: str = "grounding_dino"
    system_metrics: bool = Field(default=True, description="log CPU/GPU/memory metrics on trial runs")

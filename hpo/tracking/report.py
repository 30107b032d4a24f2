"""The sweep report: leaderboard, learning curves, parallel coordinates and hyperparameter importance,
as PNGs plus one self-contained HTML page (images inlined), and the summary printed at the end.

Input is the trial table: a pandas DataFrame or a list of dicts with `trial_id`, `config` (dotted
params; or the params as their own columns), `history` (per-epoch dicts: epoch, val_mAP50, ...),
`state` and `score` — `MlflowSweepCallback.trial_table()` gives exactly this.

Importance uses Optuna's evaluators (fANOVA, falling back to mean decrease in impurity) on an
in-memory study rebuilt from the trials, each valued at one common epoch: mixing the scores of
early-stopped and full trials would make the budget, not the params, explain the differences.
"""
from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

_RESERVED = {"trial_id", "config", "history", "state", "score", "error", "started_at", "ended_at",
             "stopped_by_tune", "baseline"}
FINISHED_STATES = ("FINISHED", "KILLED", "TERMINATED", "DONE", "STOPPED")  # ended with its results
FAILED_STATES = ("FAILED", "ERROR", "STALE")
STATE_STYLE = {"FINISHED": "-", "KILLED": "--", "FAILED": ":", "RUNNING": "-."}
TOP_N = 20


@dataclass
class Trial:
    trial_id: str
    params: dict[str, Any]
    history: list[dict[str, float]]
    state: str
    score: Optional[float]
    error: Optional[str] = None
    baseline: bool = False  # the spec as written (automl.baseline_trial)

    @property
    def epochs(self) -> int:
        return int(self.history[-1].get("epoch", len(self.history))) if self.history else 0

    @property
    def label(self) -> str:
        return f"{self.trial_id} (baseline)" if self.baseline else self.trial_id

    def summary(self) -> Any:
        """What the one ranking rule (hpo.algorithms.scoring) reads of this trial."""
        from hpo.algorithms.scoring import TrialSummary

        return TrialSummary(self.trial_id, self.score, self.epochs, finished=self.state in FINISHED_STATES,
                            failed=self.state in FAILED_STATES, baseline=self.baseline)


@dataclass
class Report:
    directory: Path
    html: Path
    images: dict[str, Path]
    importance: dict[str, float]
    importance_method: str
    leaderboard: list[Trial] = field(default_factory=list)


# ---- input
def normalize_trials(table: Any) -> list[Trial]:
    """DataFrame or list of dicts -> Trials."""
    rows: Iterable[Mapping[str, Any]] = table.to_dict("records") if hasattr(table, "to_dict") else table
    trials = []
    for row in rows:
        params = dict(row.get("config") or {}) or {k: v for k, v in row.items() if k not in _RESERVED}
        params = {k: v for k, v in params.items() if not str(k).startswith("__")}
        trials.append(Trial(str(row["trial_id"]), params, list(row.get("history") or []),
                            str(row.get("state") or "UNKNOWN"), _number(row.get("score")), row.get("error"),
                            bool(row.get("baseline"))))
    return trials


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def ranked(trials: Sequence[Trial], mode: str, multi_fidelity: bool = False) -> list[Trial]:
    """Trials best first by the one ranking rule (hpo.algorithms.scoring.ranked): candidates first
    (largest budget reached first in multi-fidelity sweeps, then score; ties: the earlier trial), then
    the rest in the order given."""
    from hpo.algorithms.scoring import rank_items

    return rank_items(trials, Trial.summary, mode, multi_fidelity)


def vs_baseline(score: Optional[float], baseline: Optional[float]) -> str:
    """`score` against a baseline score, as a signed difference ("+0.0123", "-", "=")."""
    if score is None or baseline is None:
        return "-"
    delta = score - baseline
    return "=" if delta == 0 else f"{delta:+.4f}"


def baseline_scores(trials: Sequence[Trial], extra: Optional[Mapping[str, float]] = None) -> dict[str, float]:
    """The baselines each trial is shown against: the baseline trial's score (the spec as written)
    and any measured ones given in `extra` (e.g. the pretrained checkpoint's zero-shot score)."""
    out: dict[str, float] = {}
    for t in trials:
        if t.baseline and t.score is not None:
            out["spec as written"] = t.score
    for name, value in (extra or {}).items():
        number = _number(value)
        if number is not None:
            out[name] = number
    return out


def searched_params(trials: Sequence[Trial]) -> list[str]:
    """Params that take more than one value across the trials (the others are fixed settings)."""
    names: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            names.setdefault(name, set()).add(json.dumps(value, sort_keys=True, default=str))
    return sorted(n for n, values in names.items() if len(values) > 1)


# ---- importance
def common_budget_scores(trials: Sequence[Trial], metric: str) -> tuple[dict[str, float], Optional[int]]:
    """Each trial's `metric` at one common epoch, so that early-stopped and full trials compare fairly:
    the largest epoch that at least half of the trials (and at least 5, or all if fewer) reached.
    Trials without a history fall back to their score (epoch None)."""
    with_history = [t for t in trials if any(metric in h for h in t.history)]
    if not with_history:
        return {t.trial_id: t.score for t in trials if t.score is not None}, None
    needed = min(len(with_history), max(5, len(with_history) // 2))
    epochs = sorted({int(h.get("epoch", i + 1)) for t in with_history for i, h in enumerate(t.history)}, reverse=True)
    for epoch in epochs:
        values = {t.trial_id: v for t in with_history if (v := _value_at(t, metric, epoch)) is not None}
        if len(values) >= needed:
            return values, epoch
    return {}, None


def _value_at(trial: Trial, metric: str, epoch: int) -> Optional[float]:
    """The last reported value at or before `epoch`, if the trial got as far as `epoch`."""
    if trial.epochs < epoch:
        return None
    values = [h[metric] for i, h in enumerate(trial.history) if metric in h and h.get("epoch", i + 1) <= epoch]
    return _number(values[-1]) if values else None


def param_importance(trials: Sequence[Trial], mode: str, metric: str = "val_mAP50") -> tuple[dict[str, float], str]:
    """Optuna's fANOVA importance (normalised to sum 1) of the params for `metric` at a common epoch;
    ({}, reason) when there is too little to go on."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values, epoch = common_budget_scores(trials, metric)
    scored = [t for t in trials if t.trial_id in values]
    names = [n for n in searched_params(scored) if all(n in t.params for t in scored)]
    if len(scored) < 3 or not names:
        return {}, "not enough scored trials with varying parameters (need 3)"
    distributions = {n: _distribution([t.params[n] for t in scored]) for n in names}
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    study.add_trials([optuna.trial.create_trial(
        params={n: _encode(t.params[n], distributions[n]) for n in names},
        distributions=distributions, value=values[t.trial_id]) for t in scored])
    where = f"{metric} at epoch {epoch}, {len(scored)} trials" if epoch else f"score, {len(scored)} trials"
    for evaluator, label in ((optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"),
                             (optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0), "MDI")):
        try:
            importance = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
        except Exception:  # noqa: BLE001 - e.g. a degenerate forest: try the next evaluator
            continue
        return {k: float(v) for k, v in importance.items()}, f"{label}; {where}"
    return {}, "Optuna's evaluators failed on these trials"


def _distribution(values: list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if all(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return CategoricalDistribution(sorted({json.dumps(v, default=str) for v in values}))
    low, high = min(values), max(values)
    if all(isinstance(v, int) for v in values):
        return IntDistribution(int(low), int(high))
    return FloatDistribution(float(low), float(high), log=low > 0 and high / low >= 100)


def _encode(value: Any, distribution: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    return json.dumps(value, default=str) if isinstance(distribution, CategoricalDistribution) else value


# ---- figures
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def plot_leaderboard(trials: Sequence[Trial], metric: str, path: Path) -> Path:
    plt = _pyplot()
    shown = [t for t in trials if t.score is not None][:TOP_N][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(shown), 3) + 1))
    ax.barh([f"{t.label} ({t.state})" for t in shown], [t.score for t in shown],
            color=["tab:orange" if t.baseline else "tab:blue" for t in shown])
    ax.set_xlabel(metric)
    ax.set_title(f"leaderboard: best {len(shown)} trials")
    return _save(fig, path)


LEGEND_ROWS = 18  # trials per legend column


def plot_learning_curves(trials: Sequence[Trial], metric: str, path: Path) -> Path:
    return _save(learning_curves_figure(trials, metric), path)


def learning_curves_figure(trials: Sequence[Trial], metric: str) -> Any:
    """One line per trial, named in the legend (colour: the trial, line style: its state); epochs on whole
    numbers."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    curves = []
    for trial in trials:
        points = [(h.get("epoch", i + 1), h[metric]) for i, h in enumerate(trial.history) if metric in h]
        if points:
            curves.append((trial, points))
    columns = 1 + (len(curves) + len(STATE_STYLE)) // (LEGEND_ROWS + 1)
    fig, ax = plt.subplots(figsize=(7 + 2.2 * columns, 4.5))
    for trial, points in curves:
        xs, ys = zip(*points)
        ax.plot(xs, ys, STATE_STYLE.get(trial.state, "-"), marker="o", markersize=3, alpha=0.8,
                linewidth=2.5 if trial.baseline else 1.5, label=trial.label)
    for state, style in STATE_STYLE.items():  # what the line styles mean
        ax.plot([], [], style, color="gray", label=state.lower())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("learning curves")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=columns, frameon=False)
    return fig


def plot_parallel_coordinates(trials: Sequence[Trial], metric: str, mode: str, path: Path) -> Path:
    """One vertical axis per searched param (scaled to [0, 1]; log for wide positive ranges), the score last."""
    plt = _pyplot()
    scored = [t for t in trials if t.score is not None]
    names = searched_params(scored)
    columns = [_axis([t.params.get(n) for t in scored]) for n in names] + [_axis([t.score for t in scored])]
    labels = names + [metric]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4.5))
    scores = [t.score for t in scored]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    cmap = plt.get_cmap("viridis" if mode == "max" else "viridis_r")
    for row, score in enumerate(scores):
        colour = cmap((score - low) / (high - low) if high > low else 1.0)
        ax.plot(range(len(labels)), [column[0][row] for column in columns], color=colour, alpha=0.8)
    for x, (_, ticks) in enumerate(columns):
        ax.axvline(x, color="black", linewidth=0.8)
        for y, text in ticks:
            ax.text(x + 0.02, y, text, fontsize=7, va="center")
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_title("parallel coordinates (colour: score)")
    return _save(fig, path)


def _axis(values: list[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """Positions in [0, 1] for one axis and a few (position, label) ticks."""
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None]
    if len(numeric) == len(values) and values:
        low, high = min(numeric), max(numeric)
        use_log = low > 0 and high / low >= 100
        f = (lambda v: math.log10(v)) if use_log else (lambda v: float(v))
        span = (f(high) - f(low)) or 1.0
        positions = [(f(v) - f(low)) / span for v in numeric]
        return positions, [(0.0, f"{low:.3g}"), (1.0, f"{high:.3g}")]
    options = sorted({json.dumps(v, default=str) for v in values})
    step = 1.0 / max(len(options) - 1, 1)
    index = {o: i * step for i, o in enumerate(options)}
    return ([index[json.dumps(v, default=str)] for v in values],
            [(index[o], o.strip('"')[:16]) for o in options])


def plot_importance(importance: Mapping[str, float], method: str, path: Path) -> Path:
    plt = _pyplot()
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(items), 3) + 1))
    if items:
        ax.barh([k for k, _ in items], [v for _, v in items], color="tab:orange")
    else:
        ax.text(0.5, 0.5, "not enough trials", ha="center", va="center")
    ax.set_xlabel(f"importance ({method})")
    ax.set_title("hyperparameter importance")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


# ---- page and summary
def build_report(table: Any, out_dir: str | Path, *, metric: str = "val_mAP50", mode: str = "max",
                 title: str = "Grounding DINO sweep", space_table: Optional[Sequence[Mapping[str, Any]]] = None,
                 stop_reason: Optional[str] = None, multi_fidelity: bool = False,
                 baselines: Optional[Mapping[str, float]] = None,
                 test_scores: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Report:
    """Write leaderboard.png, learning_curves.png, parallel_coordinates.png, importance.png,
    importance.json and report.html (self-contained) into `out_dir`.

    `baselines`: measured baseline scores besides the baseline trial (name -> score); `test_scores`:
    trial_id -> {"AP50": ..., ...} of the top trials re-evaluated on the test data before promotion."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    trials = ranked(normalize_trials(table), mode, multi_fidelity)
    bases = baseline_scores(trials, baselines)
    importance, method = param_importance(trials, mode, metric)
    images = {
        "leaderboard": plot_leaderboard(trials, metric, directory / "leaderboard.png"),
        "learning curves": plot_learning_curves(trials, metric, directory / "learning_curves.png"),
        "parallel coordinates": plot_parallel_coordinates(trials, metric, mode,
                                                          directory / "parallel_coordinates.png"),
        "hyperparameter importance": plot_importance(importance, method, directory / "importance.png"),
    }
    (directory / "importance.json").write_text(json.dumps({"method": method, "importance": importance}, indent=2))
    page = directory / "report.html"
    page.write_text(_html(title, trials, metric, images, importance, method, space_table, stop_reason, bases,
                          dict(test_scores or {})))
    return Report(directory, page, images, importance, method, trials)


def _html(title: str, trials: Sequence[Trial], metric: str, images: Mapping[str, Path],
          importance: Mapping[str, float], method: str, space_table: Optional[Sequence[Mapping[str, Any]]],
          stop_reason: Optional[str], baselines: Optional[Mapping[str, float]] = None,
          test_scores: Optional[Mapping[str, Mapping[str, Any]]] = None) -> str:
    esc = html.escape
    names = searched_params(trials)
    baselines = dict(baselines or {})
    test_scores = dict(test_scores or {})
    test_cols = ["test AP50"] if test_scores else []
    head = "".join(f"<th>{esc(h)}</th>" for h in ["#", "trial", "state", "epochs", f"val {metric}", *test_cols,
                                                  *(f"vs {b}" for b in baselines), *names])
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in
                         [i + 1, t.label, t.state, t.epochs, _fmt(t.score),
                          *([_fmt((test_scores.get(t.trial_id) or {}).get("AP50"))] if test_scores else []),
                          *(vs_baseline(t.score, v) for v in baselines.values()),
                          *(_fmt(t.params.get(n)) for n in names)])
        + "</tr>" for i, t in enumerate(trials))
    baseline_text = "".join(f"<li>{esc(k)}: {esc(_fmt(v))}</li>" for k, v in baselines.items())
    baseline_html = f"<h2>baselines ({esc(metric)})</h2><ul>{baseline_text}</ul>" if baselines else ""
    figures = "".join(
        f"<h2>{esc(name)}</h2><img alt='{esc(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'/>" for name, path in images.items())
    importance_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:.3f}</td></tr>" for k, v in importance.items())
    space = ""
    if space_table:
        columns = list(space_table[0].keys())
        space = ("<h2>search space</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"
                 + "".join("<tr>" + "".join(f"<td>{esc(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                           for r in space_table) + "</table>")
    counts = _state_counts(trials)
    test_note = " Test AP50: the top trials re-evaluated on the test data before promotion."
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px}}img{{max-width:100%}}</style></head><body>
<h1>{esc(title)}</h1>
<p>{len(trials)} trials ({esc(counts)}){'; stopped: ' + esc(stop_reason) if stop_reason else ''}.</p>
{baseline_html}
<h2>leaderboard ({esc(metric)})</h2>
<p>Ranked by the sweep's rule: the largest epoch budget reached first (multi-fidelity sweeps), then the
validation score; ties go to the earlier trial.{test_note if test_scores else ''}</p>
<table><tr>{head}</tr>{rows}</table>
<h2>importance ({esc(method)})</h2>
<p>Every trial compared at the same epoch (the largest one most trials reached), so that trials
stopped early and full trials are judged on equal budgets.</p>
<table><tr><th>parameter</th><th>importance</th></tr>{importance_rows}</table>
{space}{figures}
</body></html>
"""


_TEST_BEGIN, _TEST_END = "<!-- test-scores -->", "<!-- /test-scores -->"


def add_test_scores(report_dir: str | Path, rows: Sequence[Mapping[str, Any]], metric: str = "val_mAP50") -> Path:
    """Add (or replace) the "validation and test" section of report.html: the top trials re-evaluated on
    the test data before promotion (hpo.promote.retest_top_trials), both scores side by side."""
    page = Path(report_dir) / "report.html"
    esc = html.escape
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in (
            row.get("rank", i + 1), f"{row['trial_id']}{' (baseline)' if row.get('baseline') else ''}",
            _fmt(row.get("val")), _fmt(row.get("test_AP50")), _fmt(row.get("test_AP")), row.get("error") or ""))
        + "</tr>" for i, row in enumerate(rows))
    section = (f"{_TEST_BEGIN}<h2>validation and test</h2><p>The top trials by the sweep's rule, re-evaluated on "
               f"dataset.test_data_sources before promotion (the choice stays the validation rule's).</p>"
               f"<table><tr><th>#</th><th>trial</th><th>val {esc(metric)}</th><th>test AP50</th><th>test AP</th>"
               f"<th>note</th></tr>{body}</table>{_TEST_END}")
    text = page.read_text() if page.is_file() else "<!DOCTYPE html><html><body></body></html>"
    if _TEST_BEGIN in text:
        text = text[:text.index(_TEST_BEGIN)] + text[text.index(_TEST_END) + len(_TEST_END):]
    text = text.replace("</body>", section + "\n</body>", 1) if "</body>" in text else text + section
    page.write_text(text)
    return page


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _state_counts(trials: Sequence[Trial]) -> str:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def summary_text(table: Any, *, metric: str = "val_mAP50", mode: str = "max", stop_reason: Optional[str] = None,
                 results_dir: Optional[str | Path] = None, tracking_uri: Optional[str] = None,
                 report: Optional[Report] = None, top: int = 5, multi_fidelity: bool = False,
                 baselines: Optional[Mapping[str, float]] = None) -> str:
    """The few lines printed at the end of a sweep: outcome, best trial (the one ranking rule) and its
    params against the baselines, where things are."""
    from gdino.redact import redact_text
    from hpo.algorithms.scoring import better

    trials = ranked(normalize_trials(table), mode, multi_fidelity)
    bases = baseline_scores(trials, baselines)
    lines = [f"sweep finished: {len(trials)} trials ({_state_counts(trials)})"
             + (f"; stopped because {stop_reason}" if stop_reason else "")]
    best = trials[0] if trials and trials[0].summary().candidate else None
    if best is None:
        lines.append(f"no trial finished with {metric}")
    else:
        lines.append(f"best trial {best.label}: {metric} = {best.score:.4g} after {best.epochs} epoch(s)")
        if best.baseline:
            lines.append("  the spec as written (the baseline trial) is the best: no sampled configuration "
                         "beat it, so it is what gets promoted")
        lines += [f"  {name} = {_fmt(best.params.get(name))}" for name in searched_params(trials) or best.params]
        for name, value in bases.items():
            lines.append(f"  vs baseline ({name}, {_fmt(value)}): {vs_baseline(best.score, value)}")
        lines.append(f"top {min(top, len(trials))}:")
        lines += [f"  {i + 1}. {t.label}  {metric}={_fmt(t.score)}  {t.state}  {t.epochs} ep"
                  for i, t in enumerate(trials[:top])]
    scored = [t.score for t in trials if t.score is not None]
    for name, value in bases.items():
        if name != "spec as written" and scored and all(better(value, s, mode) for s in scored):
            lines.append(f"WARNING: the {name} baseline ({metric}={_fmt(value)}) beats every trial")
    if report is not None and report.importance:
        top_param = max(report.importance, key=report.importance.get)
        lines.append(f"most important: {top_param} ({report.importance[top_param]:.2f}, {report.importance_method})")
    if report is not None:
        lines.append(f"report: {report.html}")
    if results_dir is not None:
        lines.append(f"results: {results_dir}")
    if tracking_uri is not None:
        uri = redact_text(tracking_uri)
        ui = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"open {uri}"
        lines.append(f"MLflow: {uri}  (view: {ui})")
    return "\n".join(lines)

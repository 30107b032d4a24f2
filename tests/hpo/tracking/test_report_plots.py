"""The report's learning curves: each trial named in the legend, epochs on whole numbers."""
from __future__ import annotations

from hpo.tracking.report import Trial, learning_curves_figure, plot_learning_curves


def _trials() -> list[Trial]:
    def history(values: list[float]) -> list[dict[str, float]]:
        return [{"epoch": float(i + 1), "val_mAP50": v} for i, v in enumerate(values)]

    return [Trial("a1b2c_00000", {"lr": 0.1}, history([0.1, 0.3, 0.35]), "FINISHED", 0.35, baseline=True),
            Trial("a1b2c_00001", {"lr": 0.01}, history([0.05]), "KILLED", 0.05),
            Trial("a1b2c_00002", {"lr": 0.001}, [], "FAILED", None)]


def test_each_trial_is_named_in_the_legend_and_epochs_are_whole(tmp_path):
    fig = learning_curves_figure(_trials(), "val_mAP50")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["a1b2c_00000 (baseline)", "a1b2c_00001"]  # a trial without points has no line
    assert {"finished", "killed", "failed"} <= set(labels[2:])
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert plot_learning_curves(_trials(), "val_mAP50", tmp_path / "curves.png").stat().st_size > 0

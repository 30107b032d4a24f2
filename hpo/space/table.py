"""The effective search space as rows (`SearchSpace.table`) and as a fixed-width text table."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.space.domains import CategoricalDomain

if TYPE_CHECKING:  # pragma: no cover
    from hpo.space.space import SearchSpace

COLUMNS = ("parameter", "type", "range", "scale", "weights", "condition", "dependency")


def table_rows(space: "SearchSpace") -> list[dict[str, Any]]:
    """One row per searched param, in coordinate (dependency) order."""
    rows = []
    for p in space.params:
        weights = "-"
        if isinstance(p.domain, CategoricalDomain) and p.domain.weights is not None:
            weights = ", ".join(f"{o}: {w:.3g}" for o, w in zip(p.domain.options, p.domain.probabilities))
        rows.append({
            "parameter": p.name,
            "type": p.value_type or p.domain.kind,
            "range": p.domain.describe(),
            "scale": p.domain.scale,
            "weights": weights,
            "condition": p.condition.describe() if p.condition else "-",
            "dependency": "; ".join(r.describe() for r in p.relations) or "-",
            "default": p.default,
            "note": p.note,
        })
    return rows


def _grid(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)).rstrip() for r in rows]
    return lines


def render_table(space: "SearchSpace") -> str:
    """The table a user reads before spending budget: what is searched, how, and what is not."""
    rows = table_rows(space)
    lines = [f"search space ({space.mode} mode): {len(rows)} parameter(s)"]
    lines += _grid(rows, COLUMNS)
    notes = [f"  {r['parameter']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        lines += ["", "notes:"] + notes
    if space.excluded:
        lines += ["", "not searched:"] + [f"  {e.name}: {e.reason}" for e in space.excluded]
    if space.fixed:
        lines += ["", "fixed values used by constraints:"]
        lines += [f"  {k} = {v!r}" for k, v in sorted(space.fixed.items())]
    return "\n".join(lines)

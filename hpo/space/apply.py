"""Writing a sampled flat configuration into a nested TAO spec, and the epoch budget of a trial."""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping, Sequence

from gdino.errors import SpecError

EPOCHS_KEY = "train.num_epochs"
_INDEX = re.compile(r"^(?P<key>[^\[\]]+)((\[\d+\])*)$")


def _split(dotted: str) -> list[str | int]:
    """`a.b[0].c` -> ["a", "b", 0, "c"]."""
    parts: list[str | int] = []
    for piece in dotted.split("."):
        match = _INDEX.match(piece)
        if not piece or not match:
            raise SpecError("not a dotted parameter name", key=dotted)
        parts.append(match.group("key"))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", piece))
    return parts


def set_dotted_copy_free(spec: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `dotted` inside `spec` in place, creating missing dict levels."""
    parts = _split(dotted)
    node: Any = spec
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise SpecError(f"index {part} out of range", key=dotted)
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise SpecError(f"{part!r} is not inside a mapping", key=dotted)
        if node.get(part) is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SpecError(f"index {last} out of range", key=dotted)
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(f"{last!r} is not inside a mapping", key=dotted)


def apply_config(spec_dict: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the nested spec with each dotted value of `flat` written in (input untouched).

    A searched `train.num_epochs` also rescales `train.optim.lr_steps` (unless lr_steps is itself in
    `flat`): the milestones were written for the spec's own epoch count.
    """
    spec = copy.deepcopy(dict(spec_dict))
    original_epochs = (spec.get("train") or {}).get("num_epochs") if isinstance(spec.get("train"), dict) else None
    for dotted, value in flat.items():
        set_dotted_copy_free(spec, dotted, value)
    searched_epochs = flat.get(EPOCHS_KEY)
    if (searched_epochs is not None and "train.optim.lr_steps" not in flat and original_epochs
            and int(searched_epochs) != int(original_epochs)):
        optim = spec["train"].get("optim") or {}
        if optim.get("lr_steps"):
            optim["lr_steps"] = scale_lr_steps(optim["lr_steps"], int(original_epochs), int(searched_epochs))
    return spec


def scale_lr_steps(lr_steps: Sequence[int], num_epochs_spec: int, trial_epochs: int) -> list[int]:
    """MultiStep milestones for a trial of `trial_epochs` epochs, proportional to the spec's schedule.

    TAO keeps `lr_steps` fixed, so a 3-epoch rung of a spec with steps [10, 20] never decays. Each
    step keeps its fraction of the run (rounded, at least epoch 1, at most the trial's last epoch) and
    repeated milestones are kept: MultiStepLR applies the decay once per occurrence, so the total
    decay within the trial matches the spec's.
    """
    if num_epochs_spec < 1 or trial_epochs < 1:
        raise SpecError(f"epoch budgets must be >= 1 (spec {num_epochs_spec}, trial {trial_epochs})",
                        key="train.num_epochs")
    if trial_epochs == num_epochs_spec:
        return [int(s) for s in lr_steps]
    scaled = []
    for step in lr_steps:
        value = int(round(int(step) * trial_epochs / num_epochs_spec))
        if int(step) >= num_epochs_spec:  # never fired in the spec's run: must not fire in the trial
            scaled.append(max(value, trial_epochs))
        else:  # fired in the spec's run: fires in the trial too (milestone m acts after m epochs)
            scaled.append(min(max(value, 1), max(trial_epochs - 1, 1)))
    return sorted(scaled)


def apply_epoch_budget(spec_dict: Mapping[str, Any], trial_epochs: int) -> dict[str, Any]:
    """Set `train.num_epochs = trial_epochs` and rescale `train.optim.lr_steps` from the spec's budget."""
    spec = copy.deepcopy(dict(spec_dict))
    train = spec.setdefault("train", {})
    spec_epochs = int(train.get("num_epochs") or trial_epochs)
    optim = train.setdefault("optim", {})
    if optim.get("lr_steps"):
        optim["lr_steps"] = scale_lr_steps(optim["lr_steps"], spec_epochs, int(trial_epochs))
    train["num_epochs"] = int(trial_epochs)
    return spec

"""Value domains of one search-space parameter, each with a bijection-like map to the unit interval.

Every domain maps a unit coordinate `u` in [0, 1] to a value (`decode`) and back (`encode`), so that
a uniform `u` gives the intended distribution: linear or log-uniform floats, uniform or log-uniform
integers (optionally only powers of k or multiples of k, or with excluded values), a fair coin, and
categorical choices honouring positional `option_weights` through their cumulative distribution.

Numeric domains can be `restricted` to a narrower interval (how relational constraints between
parameters are satisfied *by construction*: a dependent parameter is decoded inside the interval its
parents leave open, never clamped onto a bound). An empty restriction raises `EmptyDomain`.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


class EmptyDomain(ValueError):
    """A restriction left no feasible value (callers turn it into a typed SchemaError/SpecError)."""


def _unit(u: float) -> float:
    """Clip a unit coordinate into [0, 1]; NaN (an optimizer's bad suggestion) maps to the middle."""
    u = float(u)
    if math.isnan(u):
        return 0.5
    return min(max(u, 0.0), 1.0)


class Domain(ABC):
    """The set of values one parameter may take, and its unit-interval encoding."""

    kind: str = "domain"

    @abstractmethod
    def decode(self, u: float) -> Any:
        """Unit coordinate -> value (uniform `u` gives this domain's sampling distribution)."""

    @abstractmethod
    def encode(self, value: Any) -> float:
        """Value -> unit coordinate in [0, 1] (the inverse of `decode` up to discretisation)."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether `value` is a member of the domain (type and bounds)."""

    @abstractmethod
    def describe(self) -> str:
        """Human-readable range, e.g. `[1e-05, 0.001]` or `{AdamW, SGD}`."""

    @property
    def scale(self) -> str:
        return "-"

    def unit_grid(self, points: int) -> list[float]:
        """Unit coordinates of a grid with about `points` values (all values for small discrete sets)."""
        if points <= 1:
            return [0.5]
        return [i / (points - 1) for i in range(points)]

    def restricted(self, low: float | None = None, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False) -> "Domain":
        """A copy narrowed to [low, high] (open ends where asked). Only numeric domains support it."""
        raise TypeError(f"{self.kind} domain cannot be restricted by a numeric bound")


@dataclass(frozen=True)
class FloatDomain(Domain):
    """Real values in [low, high] (ends optionally open), linear or log-uniform."""

    low: float
    high: float
    log: bool = False
    low_open: bool = False
    high_open: bool = False
    kind: str = field(default="float", init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise EmptyDomain(f"float range must be finite, got [{self.low}, {self.high}]")
        if self.low > self.high or (self.low == self.high and (self.low_open or self.high_open)):
            raise EmptyDomain(f"empty float range {self.describe()}")
        if self.log and self.low <= 0:
            raise EmptyDomain(f"log scale needs a positive lower bound, got {self.low}")

    @property
    def scale(self) -> str:
        return "log" if self.log else "linear"

    def decode(self, u: float) -> float:
        u = _unit(u)
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        value = min(max(value, self.low), self.high)  # float rounding only, not a constraint repair
        if self.low_open and value <= self.low:
            value = float(np.nextafter(self.low, math.inf))
        if self.high_open and value >= self.high:
            value = float(np.nextafter(self.high, -math.inf))
        return float(value)

    def encode(self, value: Any) -> float:
        v = float(value)
        if self.high == self.low:
            return 0.5
        if self.log:
            v = max(v, self.low)
            u = (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            u = (v - self.low) / (self.high - self.low)
        return _unit(u)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below

    def describe(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def restricted(self, low: float | None = None, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False) -> "FloatDomain":
        new_low, new_low_open = self.low, self.low_open
        if low is not None and (low > new_low or (low == new_low and low_open)):
            new_low, new_low_open = float(low), low_open
        new_high, new_high_open = self.high, self.high_open
        if high is not None and (high < new_high or (high == new_high and high_open)):
            new_high, new_high_open = float(high), high_open
        return replace(self, low=new_low, high=new_high, low_open=new_low_open, high_open=new_high_open)


@dataclass(frozen=True)
class IntDomain(Domain):
    """Integers in [low, high]: all of them, multiples of `step`, or powers of `power_base`.

    `log=True` makes plain integers log-uniform (P(v) proportional to log((v+1)/v)); powers of k
    are chosen uniformly among themselves (TAO's rule), which is already a log-uniform grid.
    `exclude` removes single values (e.g. math_cond "!= 0").
    """

    low: int
    high: int
    log: bool = False
    step: int | None = None
    power_base: int | None = None
    exclude: frozenset = frozenset()
    kind: str = field(default="int", init=False)

    def __post_init__(self) -> None:
        if self.step is not None and self.step < 1:
            raise EmptyDomain(f"multiple-of step must be >= 1, got {self.step}")
        if self.power_base is not None and self.power_base < 2:
            raise EmptyDomain(f"power base must be >= 2, got {self.power_base}")
        if self.log and self.power_base is None and self.step is None and self.low < 1:
            raise EmptyDomain(f"log scale needs a lower bound >= 1, got {self.low}")
        if not self._explicit_values() and self._count() == 0:
            raise EmptyDomain(f"empty integer range {self.describe()}")

    # --- the value set -------------------------------------------------------------------------
    def _explicit_values(self) -> tuple[int, ...] | None:
        """Powers of k, or small sets with exclusions, as an explicit sorted tuple; None = arithmetic."""
        if self.power_base is not None:
            values, p = [], 1
            while p <= self.high:
                if p >= self.low and p not in self.exclude:
                    values.append(p)
                p *= self.power_base
            return tuple(values)
        return None

    def _start_stride(self) -> tuple[int, int]:
        if self.step:
            return -(-self.low // self.step) * self.step, self.step
        return self.low, 1

    def _count(self) -> int:
        explicit = self._explicit_values()
        if explicit is not None:
            return len(explicit)
        start, stride = self._start_stride()
        if start > self.high:
            return 0
        total = (self.high - start) // stride + 1
        excluded = sum(1 for x in self.exclude if start <= x <= self.high and (x - start) % stride == 0)
        return total - excluded

    def values(self, limit: int = 10_000) -> list[int]:
        """All member values in increasing order (at most `limit`)."""
        explicit = self._explicit_values()
        if explicit is not None:
            return list(explicit[:limit])
        start, stride = self._start_stride()
        out: list[int] = []
        v = start
        while v <= self.high and len(out) < limit:
            if v not in self.exclude:
                out.append(v)
            v += stride
        return out

    def _nth(self, index: int) -> int:
        """The index-th member (0-based) without materialising large ranges."""
        explicit = self._explicit_values()
        if explicit is not None:
            return explicit[index]
        start, stride = self._start_stride()
        value = start + index * stride
        for x in sorted(e for e in self.exclude if start <= e <= self.high and (e - start) % stride == 0):
            if x <= value:
                value += stride
        return value

    def _index_of(self, value: int) -> int:
        explicit = self._explicit_values()
        if explicit is not None:
            return min(range(len(explicit)), key=lambda i: abs(explicit[i] - value))
        start, stride = self._start_stride()
        index = (min(max(value, start), self.high) - start) // stride
        skipped = sum(1 for x in self.exclude
                      if start <= x < value and x <= self.high and (x - start) % stride == 0)
        return max(0, min(index - skipped, self._count() - 1))

    def _plain_log(self) -> bool:
        return self.log and self.power_base is None

    # --- Domain API ------------------------------------------------------------------------------
    @property
    def scale(self) -> str:
        if self.power_base is not None:
            return f"powers of {self.power_base}"
        return ("log" if self.log else "linear") + (f", multiples of {self.step}" if self.step else "")

    def decode(self, u: float) -> int:
        u = _unit(u)
        n = self._count()
        if self._plain_log():
            lo, hi = math.log(self._nth(0)), math.log(self._nth(n - 1) + (self.step or 1))
            target = math.exp(lo + u * (hi - lo))
            return self._nth(self._index_of(int(math.floor(target + 1e-9))) if n > 1 else 0)
        return self._nth(min(int(u * n), n - 1))

    def encode(self, value: Any) -> float:
        n = self._count()
        v = int(value)
        index = self._index_of(v)
        if self._plain_log():
            first, last = self._nth(0), self._nth(n - 1) + (self.step or 1)
            lo, hi = math.log(first), math.log(last)
            member = self._nth(index)
            upper = self._nth(index + 1) if index + 1 < n else last
            mid = 0.5 * (math.log(member) + math.log(upper))
            return _unit((mid - lo) / (hi - lo)) if hi > lo else 0.5
        return (index + 0.5) / n

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
            return False
        if isinstance(value, (float, np.floating)) and (not math.isfinite(value) or value != int(value)):
            return False
        v = int(value)
        if v < self.low or v > self.high or v in self.exclude:
            return False
        explicit = self._explicit_values()
        if explicit is not None:
            return v in explicit
        start, stride = self._start_stride()
        return v >= start and (v - start) % stride == 0

    def describe(self) -> str:
        text = f"[{self.low}, {self.high}]"
        if self.exclude:
            text += " except " + ", ".join(str(x) for x in sorted(self.exclude))
        return text

    def unit_grid(self, points: int) -> list[float]:
        n = self._count()
        if n <= max(points, 1):
            return [self.encode(v) for v in self.values()]
        return super().unit_grid(points)

    def restricted(self, low: float | None = None, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False) -> "IntDomain":
        new_low, new_high = self.low, self.high
        if low is not None:
            bound = math.floor(low) + 1 if (low_open and float(low).is_integer()) else math.ceil(low)
            new_low = max(new_low, int(bound))
        if high is not None:
            bound = math.ceil(high) - 1 if (high_open and float(high).is_integer()) else math.floor(high)
            new_high = min(new_high, int(bound))
        if new_low > new_high:
            raise EmptyDomain(f"empty integer range [{new_low}, {new_high}]")
        return replace(self, low=new_low, high=new_high)


@dataclass(frozen=True)
class BoolDomain(Domain):
    """True / False with equal probability (TAO's fair coin)."""

    kind: str = field(default="bool", init=False)

    def decode(self, u: float) -> bool:
        return _unit(u) >= 0.5

    def encode(self, value: Any) -> float:
        return 0.75 if bool(value) else 0.25

    def contains(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "{False, True}"

    def unit_grid(self, points: int) -> list[float]:
        return [0.25, 0.75]


@dataclass(frozen=True)
class CategoricalDomain(Domain):
    """One of `options`; `weights` (positional, positive, any positive sum) set their probabilities.

    `ordered=True` (TAO's ordered_int) means neighbouring options are related, which PBT's explore
    step uses to move to a neighbour instead of jumping anywhere.
    """

    options: tuple
    weights: tuple[float, ...] | None = None
    ordered: bool = False
    kind: str = field(default="categorical", init=False)

    def __post_init__(self) -> None:
        if not self.options:
            raise EmptyDomain("no options")
        if self.weights is not None:
            if len(self.weights) != len(self.options):
                raise EmptyDomain(f"{len(self.weights)} option_weights for {len(self.options)} options")
            if any((not math.isfinite(w)) or w <= 0 for w in self.weights):
                raise EmptyDomain("option_weights must be finite and positive (TAO's rule), "
                                  f"got {list(self.weights)}")

    @property
    def probabilities(self) -> np.ndarray:
        if self.weights is None:
            return np.full(len(self.options), 1.0 / len(self.options))
        w = np.asarray(self.weights, dtype=float)
        return w / w.sum()

    @property
    def scale(self) -> str:
        return "ordered" if self.ordered else "-"

    @property
    def numeric(self) -> bool:
        """All options are numbers (so relations such as num_select <= num_queries apply)."""
        return all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in self.options)

    def _edges(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.probabilities)])

    def decode(self, u: float) -> Any:
        # the option whose cumulative-probability interval holds u
        index = int(np.searchsorted(self._edges()[1:], _unit(u), side="right"))
        return self.options[min(index, len(self.options) - 1)]

    def index(self, value: Any) -> int:
        for i, option in enumerate(self.options):
            if _same(option, value):
                return i
        raise KeyError(value)

    def encode(self, value: Any) -> float:
        i = self.index(value)
        edges = self._edges()
        return float(0.5 * (edges[i] + edges[i + 1]))

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except KeyError:
            return False
        return True

    def describe(self) -> str:
        return "{" + ", ".join(str(o) for o in self.options) + "}"

    def unit_grid(self, points: int) -> list[float]:
        return [self.encode(o) for o in self.options]

    def restricted(self, low: float | None = None, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False) -> "CategoricalDomain":
        """Numeric options only: keep those inside the bounds (with their weights)."""
        if not self.numeric:
            raise TypeError("only numeric options can be restricted by a numeric bound")

        def inside(o: float) -> bool:
            above = low is None or (o > low if low_open else o >= low)
            below = high is None or (o < high if high_open else o <= high)
            return above and below

        keep = [i for i, o in enumerate(self.options) if inside(o)]
        if not keep:
            raise EmptyDomain(f"no option of {self.describe()} inside the bounds")
        weights = tuple(self.weights[i] for i in keep) if self.weights is not None else None
        return replace(self, options=tuple(self.options[i] for i in keep), weights=weights)


def _same(a: Any, b: Any) -> bool:
    """Option equality that keeps True distinct from 1 (YAML may give either)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - exotic option types compare unequal
        return False


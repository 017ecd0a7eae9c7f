"""The Prometheus text exposition format 0.0.4, and the counters and histograms it shows.

Written here rather than taken from prometheus_client: the plugin uses a few
labelled counters, one histogram and gauges computed at scrape time, and the
client's import alone (its exposition module loads ssl, http.server, wsgiref,
...) cost 1.5 MB of a resident memory budget of 40 MB.

Counters and histograms are updated from waitress's request threads and read by
a scrape on another: each holds a lock for both.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelPairs = tuple[tuple[str, str], ...]

_LABEL_VALUE_ESCAPES = str.maketrans({"\\": r"\\", '"': r"\"", "\n": r"\n"})
_HELP_ESCAPES = str.maketrans({"\\": r"\\", "\n": r"\n"})


@dataclass(frozen=True)
class Sample:
    """One line of a family: its series name (with any suffix), labels and value."""

    name: str
    labels: LabelPairs
    value: float


@dataclass
class Family:
    """One metric: its ``# HELP`` and ``# TYPE`` lines, then its samples."""

    name: str
    help: str
    kind: str  # counter, gauge or histogram
    labelnames: tuple[str, ...]
    samples: list[Sample] = field(default_factory=list)

    def add(self, labelvalues: Sequence[str], value: float) -> None:
        """Add a sample of the family's own name (a gauge's)."""
        self.samples.append(
            Sample(self.name, label_pairs(self.name, self.labelnames, labelvalues), value)
        )


def gauge(name: str, help: str, labelnames: tuple[str, ...]) -> Family:
    """An empty gauge family, to fill with values computed at scrape time."""
    return Family(name, help, "gauge", labelnames)


def label_pairs(metric: str, labelnames: tuple[str, ...], labelvalues: Sequence[str]) -> LabelPairs:
    if len(labelvalues) != len(labelnames):
        raise ValueError(
            f"metric {metric}: label values {tuple(labelvalues)!r} do not match its labels "
            f"{labelnames!r}"
        )
    return tuple(zip(labelnames, labelvalues, strict=True))


class Counter:
    """A counter per set of label values, from 0 when the plugin starts."""

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...]) -> None:
        self._name = name
        self._help = help
        self._labelnames = labelnames
        self._counts: dict[LabelPairs, float] = {}
        self._lock = threading.Lock()

    def inc(self, *labelvalues: str) -> None:
        key = label_pairs(self._name, self._labelnames, labelvalues)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + 1

    def family(self) -> Family:
        with self._lock:
            counts = list(self._counts.items())
        samples = [Sample(self._name, labels, value) for labels, value in counts]
        return Family(self._name, self._help, "counter", self._labelnames, samples)


@dataclass
class _Series:
    """One label set of a histogram: observations in each bucket alone, and their sum."""

    counts: list[int]
    total: float = 0.0


class Histogram:
    """Observations per set of label values, counted in buckets by upper bound."""

    def __init__(
        self, name: str, help: str, labelnames: tuple[str, ...], buckets: Iterable[float]
    ) -> None:
        self._name = name
        self._help = help
        self._labelnames = labelnames
        self._bounds = (*sorted(float(bound) for bound in buckets), math.inf)
        self._series: dict[LabelPairs, _Series] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labelvalues: str) -> None:
        key = label_pairs(self._name, self._labelnames, labelvalues)
        bucket = bisect.bisect_left(self._bounds, value)  # the first bound >= value: "le"
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series([0] * len(self._bounds))
            series.counts[bucket] += 1
            series.total += value

    def family(self) -> Family:
        with self._lock:
            copies = [
                (labels, _Series(list(s.counts), s.total)) for labels, s in self._series.items()
            ]
        family = Family(self._name, self._help, "histogram", self._labelnames)
        for labels, series in copies:
            family.samples.extend(self._samples(labels, series))
        return family

    def _samples(self, labels: LabelPairs, series: _Series) -> list[Sample]:
        """Cumulative ``_bucket`` samples up to ``+Inf``, then ``_count`` and ``_sum``."""
        cumulative = list(itertools.accumulate(series.counts))
        samples = [
            Sample(f"{self._name}_bucket", (*labels, ("le", format_value(bound))), count)
            for bound, count in zip(self._bounds, cumulative, strict=True)
        ]
        samples.append(Sample(f"{self._name}_count", labels, cumulative[-1]))
        samples.append(Sample(f"{self._name}_sum", labels, series.total))
        return samples


def render(families: Iterable[Family]) -> bytes:
    """The text exposition of ``families``, in order, as UTF-8."""
    return "".join(family_text(family) for family in families).encode()


def family_text(family: Family) -> str:
    lines = [
        f"# HELP {family.name} {family.help.translate(_HELP_ESCAPES)}",
        f"# TYPE {family.name} {family.kind}",
    ]
    lines.extend(sample_line(sample) for sample in family.samples)
    return "\n".join(lines) + "\n"


def sample_line(sample: Sample) -> str:
    """``name{label="value",...} value``, labels by name so the output is stable."""
    labels = ",".join(
        f'{name}="{value.translate(_LABEL_VALUE_ESCAPES)}"' for name, value in sorted(sample.labels)
    )
    return f"{sample.name}{{{labels}}} {format_value(sample.value)}"


def format_value(value: float) -> str:
    """A value or bucket bound as Prometheus spells it: ``+Inf``, ``-Inf``, ``NaN``, ``3.0``."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))

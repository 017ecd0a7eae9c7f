"""The Prometheus text format as plugin.ops.exposition writes it, read back by the reference
parser.

prometheus_client's parser reads what a Prometheus server reads; the exact text
is checked too where the format leaves a choice that Prometheus cares about
(the ``_total`` name on HELP and TYPE, escapes, ``+Inf``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin.ops.exposition import Counter, Histogram, format_value, gauge, render


def parsed(text: bytes) -> list:
    return list(text_string_to_metric_families(text.decode("utf-8")))


def test_a_counter_has_help_and_type_on_its_total_name_and_one_sample_per_label_set():
    jobs = Counter("jobs_total", "Jobs done, by queue", ("queue",))
    jobs.inc("a")
    jobs.inc("a")
    jobs.inc("b")

    text = render([jobs.family()])

    assert text == (
        b"# HELP jobs_total Jobs done, by queue\n"
        b"# TYPE jobs_total counter\n"
        b'jobs_total{queue="a"} 2.0\n'
        b'jobs_total{queue="b"} 1.0\n'
    )
    (family,) = parsed(text)
    assert (family.name, family.type, family.documentation) == (
        "jobs",
        "counter",
        "Jobs done, by queue",
    )
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("jobs_total", {"queue": "a"}, 2.0),
        ("jobs_total", {"queue": "b"}, 1.0),
    ]


def test_a_counter_never_incremented_shows_only_its_help_and_type():
    text = render([Counter("jobs_total", "Jobs done", ("queue",)).family()])

    assert text == b"# HELP jobs_total Jobs done\n# TYPE jobs_total counter\n"
    (family,) = parsed(text)
    assert (family.name, family.type, family.samples) == ("jobs", "counter", [])


def test_gauges_show_the_values_added_with_labels_in_name_order():
    held = gauge("pool_addresses", "Addresses held", ("pool", "cidr"))
    held.add(("p1", "10.0.0.0/24"), 3)
    held.add(("p2", "10.0.1.0/24"), 0)

    text = render([held])

    assert text == (
        b"# HELP pool_addresses Addresses held\n"
        b"# TYPE pool_addresses gauge\n"
        b'pool_addresses{cidr="10.0.0.0/24",pool="p1"} 3.0\n'
        b'pool_addresses{cidr="10.0.1.0/24",pool="p2"} 0.0\n'
    )
    (family,) = parsed(text)
    assert family.type == "gauge"
    assert [(s.labels["pool"], s.value) for s in family.samples] == [("p1", 3.0), ("p2", 0.0)]


def test_families_come_out_in_the_order_given():
    first = gauge("b_first", "Shown first", ("x",))
    second = Counter("a_second_total", "Shown second", ("x",))
    second.inc("1")

    assert [f.name for f in parsed(render([first, second.family()]))] == ["b_first", "a_second"]


def test_a_histogram_counts_buckets_cumulatively_up_to_inf_which_equals_count():
    latency = Histogram("wait_seconds", "Time waited", ("method",), buckets=(1, 0.1, 10))
    for seconds in (0.05, 0.1, 0.5, 20):  # 0.1 is on a bound: "le" includes it
        latency.observe(seconds, "get")

    text = render([latency.family()])

    assert text == (
        b"# HELP wait_seconds Time waited\n"
        b"# TYPE wait_seconds histogram\n"
        b'wait_seconds_bucket{le="0.1",method="get"} 2.0\n'
        b'wait_seconds_bucket{le="1.0",method="get"} 3.0\n'
        b'wait_seconds_bucket{le="10.0",method="get"} 3.0\n'
        b'wait_seconds_bucket{le="+Inf",method="get"} 4.0\n'
        b'wait_seconds_count{method="get"} 4.0\n'
        b'wait_seconds_sum{method="get"} 20.65\n'
    )
    (family,) = parsed(text)
    assert family.type == "histogram"
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("wait_seconds_bucket", "+Inf")] == samples[("wait_seconds_count", None)] == 4
    assert samples[("wait_seconds_sum", None)] == pytest.approx(20.65)


def test_a_histogram_keeps_one_series_per_label_set():
    latency = Histogram("wait_seconds", "Time waited", ("method",), buckets=(1,))
    latency.observe(0.5, "get")
    latency.observe(2, "put")
    latency.observe(3, "put")

    samples = {
        (s.name, s.labels["method"], s.labels.get("le")): s.value
        for family in parsed(render([latency.family()]))
        for s in family.samples
    }

    assert samples[("wait_seconds_bucket", "get", "1.0")] == 1
    assert samples[("wait_seconds_bucket", "put", "1.0")] == 0
    assert samples[("wait_seconds_bucket", "put", "+Inf")] == 2
    assert samples[("wait_seconds_sum", "put", None)] == 5


AWKWARD_VALUES = ['say "hi"', "C:\\path", "two\nlines", "back\\nslash-n", "é ✓ 网络", ""]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_label_values_come_back_as_given_through_the_reference_parser(value):
    held = gauge("awkward", "Label values that need escapes", ("network",))
    held.add((value,), 1)

    (family,) = parsed(render([held]))

    assert family.samples[0].labels == {"network": value}


def test_label_values_escape_backslash_quote_and_newline_and_keep_other_text_as_utf8():
    held = gauge("awkward", "Escapes", ("v",))
    held.add(('a\\b"c\nd é',), 1)

    assert render([held]).splitlines()[-1] == 'awkward{v="a\\\\b\\"c\\nd é"} 1.0'.encode()


def test_help_escapes_backslash_and_newline_and_comes_back_as_given():
    help_text = 'A path like C:\\temp\nand a "quote"'
    held = gauge("documented", help_text, ("x",))

    text = render([held])

    assert text.splitlines()[0] == b'# HELP documented A path like C:\\\\temp\\nand a "quote"'
    (family,) = parsed(text)
    assert family.documentation == help_text


@pytest.mark.parametrize(
    ("value", "written"),
    [(3, "3.0"), (0.25, "0.25"), (1e-05, "1e-05"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
     (math.nan, "NaN")],
)  # fmt: skip
def test_values_are_written_as_prometheus_reads_them(value, written):
    assert format_value(value) == written
    held = gauge("v", "A value", ("x",))
    held.add(("1",), value)
    read = parsed(render([held]))[0].samples[0].value
    assert read == value or (math.isnan(read) and math.isnan(value))


def test_label_values_that_do_not_match_the_labels_are_refused_naming_the_metric():
    jobs = Counter("jobs_total", "Jobs done", ("queue", "outcome"))

    with pytest.raises(ValueError, match=r"metric jobs_total: label values \('a',\) do not match"):
        jobs.inc("a")


@pytest.fixture
def frequent_thread_switches():
    """Switch threads every microsecond, so an unlocked read-modify-write loses updates."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def in_threads(count: int, work: Callable[[], None]) -> None:
    start = threading.Barrier(count)

    def run() -> None:
        start.wait()
        work()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


THREADS, TIMES = 8, 5000


def test_increments_from_several_threads_all_count(frequent_thread_switches):
    jobs = Counter("jobs_total", "Jobs done", ("queue",))

    def work() -> None:
        for _ in range(TIMES):
            jobs.inc("a")

    in_threads(THREADS, work)

    (family,) = parsed(render([jobs.family()]))
    assert family.samples[0].value == THREADS * TIMES


class YieldingSeconds(float):
    """A duration that lets other threads run while it is being added to a sum.

    CPython 3.11 switches threads only at calls and loop jumps, never inside
    ``total += value`` on plain floats; this float makes that addition a call
    (``__radd__``), as a free-threaded interpreter could interleave it anyway.
    """

    def __radd__(self, other: float) -> float:
        time.sleep(0)
        return float(other) + float(self)


def test_observations_from_several_threads_all_count(frequent_thread_switches):
    latency = Histogram("wait_seconds", "Time waited", ("method",), buckets=(1,))

    def work() -> None:
        for _ in range(TIMES // 10):
            latency.observe(YieldingSeconds(0.5), "get")

    in_threads(THREADS, work)

    (family,) = parsed(render([latency.family()]))
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    observed = THREADS * (TIMES // 10)
    assert samples[("wait_seconds_bucket", "1.0")] == observed
    assert samples[("wait_seconds_count", None)] == observed
    assert samples[("wait_seconds_sum", None)] == observed * 0.5

"""Prometheus samples as tests read them: {(name, labels): value} from a /metrics answer,
so a test compares a count before and after what it counts happens."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(r: httpx.Response) -> Samples:
    """Every sample of a /metrics answer (which must be a 200)."""
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One series' value; 0 for a series not exported yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """A family's samples summed over their labels."""
    return sum(v for (n, _), v in samples.items() if n == name)

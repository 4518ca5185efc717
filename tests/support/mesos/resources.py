"""Mesos resource arithmetic: the scalar and range resources an agent offers and tasks use.

The double must refuse a launch that asks for more than its offer holds and must offer only
what is left after running tasks, so it needs the same (small) algebra as the real allocator.
Scalars are kept with three decimals, as Mesos does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Range = tuple[int, int]


def _normalize(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for begin, end in sorted(ranges):
        if merged and begin <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _subtract(ranges: list[Range], minus: list[Range]) -> list[Range]:
    out: list[Range] = []
    for begin, end in ranges:
        pieces = [(begin, end)]
        for mb, me in minus:
            nxt: list[Range] = []
            for pb, pe in pieces:
                if me < pb or mb > pe:
                    nxt.append((pb, pe))
                    continue
                if pb < mb:
                    nxt.append((pb, mb - 1))
                if me < pe:
                    nxt.append((me + 1, pe))
            pieces = nxt
        out.extend(pieces)
    return _normalize(out)


def _covers(ranges: list[Range], wanted: list[Range]) -> bool:
    return not _subtract(wanted, ranges)


@dataclass
class Resources:
    """A bag of named scalar and range resources (cpus, mem, disk, gpus, ports, ...)."""

    scalars: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, list[Range]] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, items: list[dict[str, Any]] | None) -> Resources:
        """Parse the protobuf-JSON `resources` list; raises ValueError naming the bad entry."""
        res = cls()
        for item in items or []:
            name = item.get("name")
            kind = item.get("type", "SCALAR")
            if not isinstance(name, str) or not name:
                raise ValueError("Resource without a 'name'")
            if kind == "SCALAR":
                value = float((item.get("scalar") or {}).get("value", 0.0))
                if value < 0:
                    raise ValueError(f"Resource '{name}' is negative")
                res.scalars[name] = round(res.scalars.get(name, 0.0) + value, 3)
            elif kind == "RANGES":
                got = [
                    (int(r["begin"]), int(r["end"]))
                    for r in (item.get("ranges") or {}).get("range", [])
                ]
                if any(b > e for b, e in got):
                    raise ValueError(f"Resource '{name}' has a range with begin > end")
                res.ranges[name] = _normalize(res.ranges.get(name, []) + got)
            elif kind == "SET":
                continue  # no set resources are offered by the double
            else:
                raise ValueError(f"Resource '{name}' has unknown type '{kind}'")
        return res

    def to_proto(self, role: str = "*") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, value in self.scalars.items():
            if value > 0:
                out.append(
                    {
                        "name": name,
                        "type": "SCALAR",
                        "scalar": {"value": value},
                        "role": role,
                        "allocation_info": {"role": role},
                    }
                )
        for name, ranges in self.ranges.items():
            if ranges:
                out.append(
                    {
                        "name": name,
                        "type": "RANGES",
                        "ranges": {"range": [{"begin": b, "end": e} for b, e in ranges]},
                        "role": role,
                        "allocation_info": {"role": role},
                    }
                )
        return out

    def __add__(self, other: Resources) -> Resources:
        scalars = dict(self.scalars)
        for name, value in other.scalars.items():
            scalars[name] = round(scalars.get(name, 0.0) + value, 3)
        ranges = dict(self.ranges)  # lists shared: see __sub__
        for name, r in other.ranges.items():
            ranges[name] = _normalize(ranges.get(name, []) + r)
        return Resources(scalars, ranges)

    def __sub__(self, other: Resources) -> Resources:
        scalars = dict(self.scalars)
        for name, value in other.scalars.items():
            scalars[name] = max(0.0, round(scalars.get(name, 0.0) - value, 3))
        # range lists are never changed in place: a task without ranges (most) shares them
        ranges = dict(self.ranges)
        for name, r in other.ranges.items():
            ranges[name] = _subtract(ranges.get(name, []), r)
        return Resources(scalars, ranges)

    def contains(self, other: Resources) -> bool:
        for name, value in other.scalars.items():
            if round(self.scalars.get(name, 0.0) - value, 3) < 0:
                return False
        return all(_covers(self.ranges.get(name, []), r) for name, r in other.ranges.items())

    def allocatable(self) -> bool:
        """Mesos offers an agent only if at least 0.01 cpus or 32 MB of memory are free."""
        return self.scalars.get("cpus", 0.0) >= 0.01 or self.scalars.get("mem", 0.0) >= 32

    def __str__(self) -> str:
        parts = [f"{n}:{v:g}" for n, v in self.scalars.items()]
        parts += [f"{n}:[{','.join(f'{b}-{e}' for b, e in r)}]" for n, r in self.ranges.items()]
        return "; ".join(parts)

"""The one answer to "how many CPUs may this process use?"."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ("usable_cores",)


def usable_cores() -> int:
    """Cores this process may really use: CPU affinity capped by the cgroup CPU quota.

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_quota()
    return max(1, min(cores or 1, quota if quota else cores or 1))


def _cgroup_quota() -> int | None:
    """CPUs allowed by cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us``; None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text()
        period_v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text()
        value = int(v1)
        return None if value <= 0 else max(1, math.ceil(value / int(period_v1)))
    except (OSError, ValueError):
        return None

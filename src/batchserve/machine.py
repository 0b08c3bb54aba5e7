"""What this process may use of the machine: its cores.

Every layer sizes itself from `cpu_count()` (the auto layout, the decode pool, the
safety check's pool size), so a process given a share of a machine — a Ray Serve
replica with `num_cpus: 2`, a container with a CPU limit the affinity mask does not
show — sets `BATCHSERVE_CPUS` and everything follows.
"""

from __future__ import annotations

import os

#: Overrides the cores this process counts as its own (a whole number >= 1).
CPUS_ENV = "BATCHSERVE_CPUS"


def cpu_count() -> int:
    """`$BATCHSERVE_CPUS` when set, else the cores this process may run on."""
    override = os.environ.get(CPUS_ENV)
    if override:
        try:
            cpus = int(override)
        except ValueError:
            raise ValueError(f"{CPUS_ENV}={override!r}: expected a whole number of cores") from None
        if cpus < 1:
            raise ValueError(f"{CPUS_ENV}={override!r}: must be at least 1")
        return cpus
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1

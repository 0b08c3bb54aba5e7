"""The thread-safety analysis: may one instance of a model serve many threads at once?

`analysis` runs the checks, `verdict` decides between `shared`, `pool(N)` and
`stateful`, `command` is `batchserve check`, and `config_writer` records the
verdict in model.yaml when asked to.
"""

from batchserve.safety.analysis import analyse
from batchserve.safety.verdict import Finding, SafetyReport

__all__ = ["Finding", "SafetyReport", "analyse"]

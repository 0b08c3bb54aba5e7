"""Tests of `batchserve bench` (the package) and of the scripts under bench/.

bench/ and bench/peers/ are scripts, not packages: they are put on the path here, once,
so that a test imports them (`import compare`, `from wrk_runner import ...`) as the
scripts import each other.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _scripts in (ROOT / "bench", ROOT / "bench" / "peers"):
    if str(_scripts) not in sys.path:
        sys.path.insert(0, str(_scripts))

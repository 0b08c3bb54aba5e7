"""Small Python models (backend: python) written into model folders, for the tests.

Each is a real `model.py` beside a real `model.yaml`, loaded the way the server loads
them; the classes here are the kinds of model a test needs (one that holds its worker,
one that breaks the list contract, one that counts its calls).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

DOUBLER = '''
import time

NAME = "doubler"


class Doubler:
    """{"value": v, "hold_s": s} -> {"double": 2 v, "seen": batch sizes so far}; holds the
    worker for s seconds, and refuses a negative value (that input alone must fail)."""

    inputs = ({"name": "value", "datatype": "FP32", "shape": [-1]},)

    def load(self, version_dir, options):
        self.factor = float(options.get("factor", 2))
        self.seen = []

    def predict(self, inputs):
        self.seen.append(len(inputs))
        results = []
        for item in inputs:
            if isinstance(item, dict) and "value" in item and hasattr(item["value"], "shape"):
                results.append({"double": item["value"] * self.factor})  # a v2 request
                continue
            if item["value"] < 0:
                raise ValueError(f"value must not be negative, got {item['value']}")
            time.sleep(float(item.get("hold_s", 0)))
            results.append({"double": item["value"] * self.factor, "seen": list(self.seen)})
        return results
'''

BROKEN = '''
NAME = "broken"


class Broken:
    """Returns one result too few: the list contract broken."""

    def predict(self, inputs):
        return [NAME] * (len(inputs) - 1)
'''

COUNTERS = '''
class HiddenCounter:
    """Counts its calls but answers from its input only."""

    inputs = ({"name": "x", "datatype": "FP32", "shape": [-1, 4]},)

    def load(self, version_dir, options):
        self.calls = 0

    def predict(self, inputs):
        self.calls += 1
        return [{"y": item["x"] * 2} for item in inputs]


class VisibleCounter:
    """The seed's CustomLayer as a Python model: the answer depends on the call count."""

    inputs = ({"name": "x", "datatype": "FP32", "shape": [-1, 4]},)

    def load(self, version_dir, options):
        self.calls = 0

    def predict(self, inputs):
        self.calls += 1
        return [{"y": item["x"] + self.calls} for item in inputs]


class Clean:
    """Reads its weights, writes nothing; its example is a list, not tensors."""

    def load(self, version_dir, options):
        self.weights = [1.0, 2.0, 3.0]

    def predict(self, inputs):
        return [sum(w * v for w, v in zip(self.weights, item)) for item in inputs]

    def example(self, seed):
        return [float(seed), 1.0, 2.0]
'''

#: Importing it leaves a mark: a refusal must come before the file is read.
MARKS_IMPORT = """
from pathlib import Path

Path(__file__).with_name("imported").write_text("model.py ran")


class Marker:
    def predict(self, inputs):
        return inputs
"""


def write_model(
    root: Path, name: str, source: str, cls: str, *, allow_code: bool = True, extra: str = ""
) -> Path:
    """A model folder `root/name`: model.yaml naming `model:cls`, model.py, version 1."""
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "model.py").write_text(textwrap.dedent(source))
    (folder / "model.yaml").write_text(
        "backend: python\n"
        f"allow_code: {'true' if allow_code else 'false'}\n"
        f"python: {{class: 'model:{cls}'}}\n" + extra
    )
    return folder

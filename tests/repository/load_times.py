"""Measure load and swap times of real models, from a local folder and from S3 (moto).

Not a test: a measurement, run by hand::

    .venv/bin/python -m tests.repository.load_times models/shapes /tmp/mbench/mobilenet_v1

For each model and each store it reports, in seconds:

- cold load: first load in a fresh cache (for S3 the download; for `kind: auto`
  the layout profile, bounded by --profile-budget),
- warm load: the same model again (S3: files reused by ETag; layout from its cache),
- swap: a new version appears; the poll that loads it (fetch, load, warm-up) and
  swaps it in, the swap itself (replacing the served dictionary), and when the
  old version had drained and released its sessions (counted from the poll's end).
  The new version is the same weights with another doc string, so its file hash
  differs and its layout is profiled again, as a real new version's would be.

`--pin-scheduler` replaces the model's scheduler section with explicit values
(no profiling), which separates the repository's own cost from the profile's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import onnx
import yaml

from batchserve.repository.local_store import LocalStore
from batchserve.repository.manager import ModelManager
from batchserve.repository.s3_store import S3Store
from batchserve.repository.store import ModelStore
from tests.repository.moto_s3 import MotoS3

PINNED = {"kind": "shared", "instances": 2, "threads": 1, "max_batch_size": 1}


def _repository(model_dir: Path, root: Path, pin: bool) -> Path:
    """`root/<name>/` with the model's files and its version 1."""
    target = root / model_dir.name
    target.mkdir(parents=True)
    for path in model_dir.iterdir():
        if path.is_file():
            shutil.copy(path, target / path.name)
    shutil.copytree(model_dir / "1", target / "1")
    if pin:
        config = yaml.safe_load((target / "model.yaml").read_text())
        config["scheduler"] = PINNED
        (target / "model.yaml").write_text(yaml.safe_dump(config))
    return target


def _new_version(target: Path) -> Path:
    """Version 2: version 1's weights, another file hash."""
    model = onnx.load(str(target / "1" / "model.onnx"))
    model.doc_string = "version 2"
    (target / "2").mkdir()
    onnx.save(model, str(target / "2" / "model.onnx"))
    return target / "2"


def _timed_load(
    store: ModelStore, name: str, profile_budget_s: float
) -> tuple[float, ModelManager]:
    manager = ModelManager([store], profile_budget_s=profile_budget_s)
    started = time.perf_counter()
    manager.load_all()
    elapsed = time.perf_counter() - started
    manager.get(name)  # raises if it did not load
    return elapsed, manager


def measure(
    model_dir: Path,
    kind: str,
    work: Path,
    s3: MotoS3 | None,
    profile_budget_s: float,
    pin: bool = False,
) -> dict[str, float]:
    name = model_dir.name
    os.environ["BATCHSERVE_CACHE_DIR"] = str(work / "cache")  # fresh layouts and downloads
    target = _repository(model_dir, work / "repo", pin)
    bucket = f"times-{kind}-{name.replace('_', '-')}"

    def open_store() -> ModelStore:
        if s3 is None:
            return LocalStore(work / "repo")
        return S3Store.from_url(
            f"s3://{bucket}/repo", cache_dir=work / "cache" / "models", endpoint_url=s3.endpoint
        )

    if s3 is not None:
        s3.upload(work / "repo", bucket, "repo")
    cold, manager = _timed_load(open_store(), name, profile_budget_s)
    manager.stop()
    warm, manager = _timed_load(open_store(), name, profile_budget_s)
    try:
        version_dir = _new_version(target)
        if s3 is not None:
            s3.upload(version_dir, bucket, f"repo/{name}/2")
        old = manager.get(name)
        manager.poll()  # sees version 2; waits one scan for its files to settle
        started = time.perf_counter()
        manager.poll()  # loads version 2 and swaps it in
        poll_s = time.perf_counter() - started
        new = manager.get(name)
        assert new.version == 2, "version 2 did not load"
        swapped_at = time.perf_counter()
        while old.instances and time.perf_counter() - swapped_at < 60:
            time.sleep(0.005)
        drained_s = time.perf_counter() - swapped_at
    finally:
        manager.stop()
    return {
        "cold load": cold,
        "warm load": warm,
        "swap: poll (load v2 + swap)": poll_s,
        "swap: v2 load alone": new.load_seconds,
        "swap: old released (after the poll)": drained_s,
    }


def _swap_cost() -> float:
    """What the swap itself costs: replacing a dict under a lock, timed over many."""
    lock, served = threading.Lock(), {1: object()}
    started = time.perf_counter()
    for _ in range(100_000):
        with lock:
            served = {**served, 2: object()}
    return (time.perf_counter() - started) / 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders (with 1/)")
    parser.add_argument("--profile-budget", type=float, default=6.0, help="seconds, as serve")
    parser.add_argument("--pin-scheduler", action="store_true", help=f"scheduler: {PINNED}")
    args = parser.parse_args()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    rows: list[tuple[str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, MotoS3() as s3:
        for model_dir in args.models:
            for kind in ("local", "s3"):
                work = Path(tmp) / f"{model_dir.name}-{kind}"
                result = measure(
                    model_dir,
                    kind,
                    work,
                    s3 if kind == "s3" else None,
                    args.profile_budget,
                    args.pin_scheduler,
                )
                rows.append((model_dir.name, kind, result))
    print(f"swap itself (dict replace under a lock): {_swap_cost() * 1e6:.2f} us")
    for name, kind, result in rows:
        cells = ", ".join(f"{k} {v:.2f} s" for k, v in result.items())
        print(f"{name:14s} {kind:5s} {cells}")


if __name__ == "__main__":
    main()

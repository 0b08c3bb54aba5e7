"""Train the shipped demo model: MobileNet v1 on generated coloured shapes, exported to ONNX.

Usage (``make train-demo``)::

    python tools/train_shapes.py --out models/shapes

Everything is generated (tools/shapes.py), nothing is downloaded. Seeds are fixed and
torch runs on 2 threads, so a rerun on the same machine reproduces the model.

Measured on the 2-core development machine (torch 2.13.0 CPU) with the defaults
(64x64 input, alpha 0.5, 40,000 training images, 8 epochs of 128):

- held-out top-1 accuracy 100.00% on 4,800 images from another seed; all six sample
  JPEGs right, scores about 0.95 (label smoothing caps them there);
- time: 9.5 minutes wall (15.2 CPU minutes) for the quietest whole run; drawing the
  images took 56 s and an epoch 41-43 s when nothing else ran, so about 7 minutes on an
  idle machine. Other jobs sharing the 2 cores stretched runs to 16-34 minutes wall;
- model.onnx 3.3 MB (830,904 parameters, BatchNorm folded into the convolutions);
- four full runs wrote byte-identical model.onnx files and sample JPEGs.

The training images go through the serving pipeline's own preprocessing: drawn
larger than the model input, sometimes JPEG re-encoded, resized with Pillow
BILINEAR to the model size, then scaled to [0, 1] and normalised with mean 0.5
and std 0.5 per channel (so the input lies in [-1, 1]). The same steps classify
the sample JPEGs at the end through ONNX Runtime.

Writes ``OUT/1/model.onnx``, ``OUT/labels.txt``, ``OUT/model.yaml`` and the sample
JPEGs (``samples/red_circle.jpg``, ..., ``samples/bench_640x480.jpg``).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mobilenet_v1 import MobileNetV1, count_parameters
from shapes import CLASSES, draw, draw_scene

ROOT = Path(__file__).resolve().parent.parent
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
SAMPLE_CLASSES = (
    "red circle",
    "yellow square",
    "green triangle",
    "blue star",
    "red cross",
    "blue hexagon",
)
SAMPLE_SIZE = 256
TRAIN_SEED = 0
HELD_OUT_SEED = 1_000_003
SAMPLE_SEED = 2_000_003


def render(task: tuple[int, int, int]) -> np.ndarray:
    """Image ``index`` of the set seeded ``seed``, at ``size`` x ``size`` as HWC uint8.

    Each image has its own generator, so the set does not depend on how the pool splits it.
    """
    seed, index, size = task
    rng = np.random.default_rng([seed, index])
    # Drawn larger then downscaled, as a served photo is; sometimes through JPEG first.
    image = draw(rng, index % len(CLASSES), round(size * rng.uniform(1.5, 3.0)))
    if rng.random() < 0.4:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(40, 96)))
        image = Image.open(io.BytesIO(buffer.getvalue()))
    return np.asarray(resize(image, size))


def resize(image: Image.Image, size: int) -> Image.Image:
    """The serving pipeline's ``resize: stretch``: RGB, Pillow BILINEAR to size x size."""
    return image.convert("RGB").resize((size, size), Image.BILINEAR)


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """One image as the model's NCHW float32 input row, exactly as the server prepares it."""
    pixels = np.asarray(resize(image, size), np.float32) / 255.0
    pixels = (pixels - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return pixels.transpose(2, 0, 1)[None]


def generate(seed: int, count: int, size: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (N, H, W, 3 uint8) with their labels, balanced across classes."""
    tasks = [(seed, i, size) for i in range(count)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        images = pool.map(render, tasks, chunksize=256)
    labels = np.arange(count) % len(CLASSES)
    return np.stack(images), labels


def to_input(batch: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW (channels-last memory: faster convs on CPU)."""
    x = torch.from_numpy(batch).float().div_(255.0)
    x = (x - torch.tensor(MEAN)) / torch.tensor(STD)
    return x.permute(0, 3, 1, 2)


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Flips and quarter turns: every class is invariant to them, so they are free data."""
    if rng.random() < 0.5:
        x = x.flip(3)
    return torch.rot90(x, int(rng.integers(4)), (2, 3))


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Top-1 accuracy and the predictions."""
    model.eval()
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(images), 500):
            x = to_input(images[start : start + 500]).contiguous(memory_format=torch.channels_last)
            predictions.append(model(x).argmax(1).numpy())
    predicted = np.concatenate(predictions)
    return float((predicted == labels).mean()), predicted


def train(args: argparse.Namespace, images: np.ndarray, labels: np.ndarray) -> nn.Module:
    """AdamW with a one-cycle schedule: converges in a few epochs, which the CPU budget needs."""
    model = MobileNetV1(len(CLASSES), alpha=args.alpha).to(memory_format=torch.channels_last)
    print(f"MobileNet v1 alpha={args.alpha}: {count_parameters(model):,} parameters", flush=True)
    steps_per_epoch = len(images) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.2
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    rng = np.random.default_rng(TRAIN_SEED)
    targets = torch.from_numpy(labels)
    for epoch in range(args.epochs):
        model.train()
        started, total_loss = time.monotonic(), 0.0
        order = rng.permutation(len(images))
        for step in range(steps_per_epoch):
            index = np.sort(order[step * args.batch_size : (step + 1) * args.batch_size])
            x = augment(to_input(images[index]), rng).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(x), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item()
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / steps_per_epoch:.4f} "
            f"({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    return model.eval()


def export(model: nn.Module, size: int, path: Path) -> None:
    """ONNX opset 17, input "input" [-1, 3, H, W] float32, output "logits" [-1, classes]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.contiguous_format).eval()
    with warnings.catch_warnings():
        # The torch.export-based exporter needs onnxscript, which is not a dependency;
        # the TorchScript one also folds BatchNorm into the convolutions.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, size, size),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


def write_config(out: Path, size: int) -> None:
    """labels.txt and model.yaml beside the version folders, validated by the server's parser."""
    (out / "labels.txt").write_text("".join(f"{label}\n" for label in CLASSES))
    (out / "model.yaml").write_text(
        "# Written by tools/train_shapes.py: MobileNet v1 on generated coloured shapes.\n"
        "name: shapes\n"
        "backend: onnx\n"
        "artifact: model.onnx\n"
        "labels: labels.txt\n"
        "preprocessing:\n"
        f"  size: [{size}, {size}]\n"
        "  resize: stretch\n"
        f"  mean: [{MEAN[0]}, {MEAN[1]}, {MEAN[2]}]\n"
        f"  std: [{STD[0]}, {STD[1]}, {STD[2]}]\n"
        "  channel_order: RGB\n"
        "  layout: NCHW\n"
        "scheduler:\n"
        "  kind: auto\n"
    )
    sys.path.insert(0, str(ROOT / "src"))
    from batchserve.config import load_model_config

    load_model_config(out / "model.yaml")


def write_samples(samples: Path) -> list[Path]:
    """The demo's sample JPEGs, from a seed that training never saw, plus a benchmark photo."""
    samples.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SAMPLE_SEED)
    paths = []
    for label in SAMPLE_CLASSES:
        path = samples / f"{label.replace(' ', '_')}.jpg"
        draw(rng, CLASSES.index(label), SAMPLE_SIZE).save(path, "JPEG", quality=90)
        paths.append(path)
    draw_scene(rng, 640, 480).save(samples / "bench_640x480.jpg", "JPEG", quality=90)
    return paths


def check_samples(model_path: Path, paths: list[Path], size: int) -> bool:
    """Classify each sample JPEG through ONNX Runtime, as the server will; all must be right."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    all_right = True
    for path in paths:
        with Image.open(path) as image:
            logits = session.run(None, {"input": preprocess(image, size)})[0][0]
        scores = np.exp(logits - logits.max())
        scores /= scores.sum()
        best = int(scores.argmax())
        expected = path.stem.replace("_", " ")
        right = CLASSES[best] == expected
        all_right &= right
        mark = "ok" if right else f"WRONG, expected {expected}"
        print(f"  {path.name}: {CLASSES[best]} {scores[best]:.3f} ({mark})")
    return all_right


def cpu_seconds() -> float:
    """CPU seconds of this process and its drawing workers: a second measure beside wall time."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "shapes")
    parser.add_argument("--samples", type=Path, default=ROOT / "samples")
    parser.add_argument("--size", type=int, default=64, help="model input height and width")
    parser.add_argument("--alpha", type=float, default=0.5, help="MobileNet width multiplier")
    parser.add_argument("--train-images", type=int, default=40_000)
    parser.add_argument("--held-out-images", type=int, default=4_800)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--workers", type=int, default=2, help="processes drawing images")
    args = parser.parse_args()

    started = time.monotonic()
    torch.manual_seed(TRAIN_SEED)
    np.random.seed(TRAIN_SEED)
    torch.set_num_threads(2)

    images, labels = generate(TRAIN_SEED, args.train_images, args.size, args.workers)
    held_out, held_out_labels = generate(
        HELD_OUT_SEED, args.held_out_images, args.size, args.workers
    )
    print(
        f"generated {len(images)} training and {len(held_out)} held-out images "
        f"at {args.size}x{args.size} in {time.monotonic() - started:.0f} s",
        flush=True,
    )

    model = train(args, images, labels)
    accuracy, predicted = evaluate(model, held_out, held_out_labels)

    model_path = args.out / "1" / "model.onnx"
    export(model, args.size, model_path)
    write_config(args.out, args.size)
    sample_paths = write_samples(args.samples)
    elapsed = time.monotonic() - started

    print(f"held-out top-1 accuracy: {accuracy:.2%} on {len(held_out)} images")
    for index, label in enumerate(CLASSES):
        mine = held_out_labels == index
        class_accuracy = float((predicted[mine] == index).mean())
        if class_accuracy < 0.97:
            print(f"  {label}: {class_accuracy:.1%}")
    print(f"model: {model_path} ({model_path.stat().st_size / 1e6:.2f} MB)")
    print("samples through ONNX Runtime:")
    samples_right = check_samples(model_path, sample_paths, args.size)
    print(
        f"total time: {elapsed / 60:.1f} min wall, {cpu_seconds() / 60:.1f} min CPU (all processes)"
    )
    if accuracy < 0.95 or not samples_right:
        sys.exit("FAILED: held-out accuracy below 95% or a sample misclassified")


if __name__ == "__main__":
    main()

"""Train the shipped text-generation model: a byte-level GRU on the stdlib's docstrings.

Usage (``make train-docgen``)::

    python tools/train_docgen.py --out models/docgen [--minutes 9]

The corpus is read offline from the running Python's standard library
(``tools/docgen.py``: every module, class and function docstring, with its
``def name(args):`` heading). 10 % of the source files are held out, whole, and the
held-out loss is reported in nats per byte, bits per byte and perplexity.

Training stops at ``--steps`` or after ``--minutes`` of wall time, whichever comes
first, and the learning rate follows a cosine over that same progress, so a
slower machine trains for fewer steps rather than for longer. Seeds are fixed, but
on a shared machine the step count (so the result) depends on the load.

Writes ``OUT/1/model.onnx`` (one decode step = one call, see tools/docgen.py),
``OUT/model.yaml`` and ``OUT/training.json`` (the figures reported).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docgen import (
    EOS,
    VOCAB,
    GruWeights,
    build_step_graph,
    encode_stream,
    held_out,
    stdlib_documents,
)

SEED = 0
MODEL_YAML = """\
# Written by tools/train_docgen.py: a byte-level GRU trained on the stdlib's docstrings.
# {summary}
name: docgen
backend: onnx
artifact: model.onnx
task: generate
generate:
  tokenizer: bytes
  eos_token: {eos}
  bos_token: {eos}
  max_tokens: 128
  max_tokens_limit: 1024
  max_prompt_tokens: 2048
scheduler:
  threads: 1
  max_batch_size: 32
  max_queue: 256
"""


class DocGen(nn.Module):
    """Embedding -> GRU -> linear: the model tools/docgen.py rebuilds in ONNX."""

    def __init__(self, embed: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, embed)
        self.gru = nn.GRU(embed, hidden, layers, batch_first=True, dropout=dropout)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(
        self, tokens: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y, state = self.gru(self.embedding(tokens), state)
        return self.out(y), state

    def weights(self) -> GruWeights:
        def get(name: str) -> np.ndarray:
            return getattr(self.gru, name).detach().numpy()

        layers = range(self.gru.num_layers)
        return GruWeights(
            embedding=self.embedding.weight.detach().numpy(),
            weight_ih=[get(f"weight_ih_l{k}") for k in layers],
            weight_hh=[get(f"weight_hh_l{k}") for k in layers],
            bias_ih=[get(f"bias_ih_l{k}") for k in layers],
            bias_hh=[get(f"bias_hh_l{k}") for k in layers],
            out_weight=self.out.weight.detach().numpy(),
            out_bias=self.out.bias.detach().numpy(),
        )


def windows(stream: np.ndarray, rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    starts = rng.integers(0, len(stream) - length - 1, size=batch)
    return torch.from_numpy(np.stack([stream[s : s + length + 1] for s in starts]))


@torch.no_grad()
def evaluate(model: DocGen, stream: np.ndarray, length: int = 512, batch: int = 32) -> float:
    """Mean next-byte loss (nats) over the whole stream, in consecutive chunks whose
    state carries over, as the model is used when generating."""
    model.eval()
    usable = (len(stream) - 1) // batch * batch
    rows = torch.from_numpy(stream[: usable + 1])
    # `batch` parallel lanes, each a contiguous slice of the stream.
    lane = usable // batch
    inputs = rows[:usable].reshape(batch, lane)
    targets = rows[1 : usable + 1].reshape(batch, lane)
    total, count, state = 0.0, 0, None
    for start in range(0, lane, length):
        logits, state = model(inputs[:, start : start + length], state)
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, VOCAB),
            targets[:, start : start + length].reshape(-1),
            reduction="sum",
        )
        total += float(loss)
        count += targets[:, start : start + length].numel()
    model.train()
    return total / count


def check_onnx(model: DocGen, path: Path) -> float:
    """Largest difference between torch and the ONNX graph: a batch of prompts of
    different lengths prefilled in one call, then three decode steps."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    prompts = [b"def read_text(self", b"Return", b"class Path:\nA path"]
    longest = max(len(p) for p in prompts)
    tokens = np.zeros((len(prompts), longest + 1), np.int64)
    for i, p in enumerate(prompts):
        tokens[i, 0] = EOS
        tokens[i, 1 : len(p) + 1] = np.frombuffer(p, np.uint8)
    lengths = np.array([len(p) + 1 for p in prompts], np.int32)
    layers, hidden = model.gru.num_layers, model.gru.hidden_size
    state = np.zeros((layers, len(prompts), hidden), np.float32)
    logits, state = session.run(None, {"tokens": tokens, "lengths": lengths, "state": state})
    worst = 0.0
    with torch.no_grad():
        ref_states, ref_logits = [], []
        for i in range(len(prompts)):
            out, s = model(torch.from_numpy(tokens[i : i + 1, : lengths[i]]))
            ref_logits.append(out[0, -1].numpy())
            ref_states.append(s)
        worst = max(worst, float(np.abs(logits - np.stack(ref_logits)).max()))
        for _ in range(3):
            nxt = logits.argmax(axis=1).astype(np.int64)[:, None]
            logits, state = session.run(
                None,
                {"tokens": nxt, "lengths": np.ones(len(prompts), np.int32), "state": state},
            )
            for i in range(len(prompts)):
                out, ref_states[i] = model(torch.from_numpy(nxt[i : i + 1]), ref_states[i])
                worst = max(worst, float(np.abs(logits[i] - out[0, -1].numpy()).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/docgen"))
    parser.add_argument("--minutes", type=float, default=9.0)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(SEED)
    began = time.perf_counter()

    documents = stdlib_documents()
    train_docs = [d for d in documents if not held_out(d)]
    test_docs = [d for d in documents if held_out(d)]
    train, test = encode_stream(train_docs), encode_stream(test_docs)
    print(
        f"corpus: {len(documents)} docstrings, train {len(train_docs)} ({len(train):,} bytes), "
        f"held out {len(test_docs)} ({len(test):,} bytes) from "
        f"{len({d.source for d in test_docs})} files",
        flush=True,
    )

    model = DocGen(args.embed, args.hidden, args.layers, dropout=0.0)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    budget_s = args.minutes * 60
    train_start = time.perf_counter()
    step, progress, smoothed = 0, 0.0, None
    last_report = train_start
    while progress < 1.0:
        lr = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = windows(train, rng, args.batch, args.length)
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        value = loss.item()
        smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
        elapsed = time.perf_counter() - train_start
        progress = max(step / args.steps, elapsed / budget_s)
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            print(f"step {step} {elapsed:.0f}s lr {lr:.4f} train loss {smoothed:.3f}", flush=True)
    train_s = time.perf_counter() - train_start

    test_loss = evaluate(model, test)
    train_loss = evaluate(model, train[: len(test)])
    print(
        f"held-out loss {test_loss:.4f} nats/byte = {test_loss / math.log(2):.3f} bits/byte, "
        f"perplexity {math.exp(test_loss):.2f} (train sample {train_loss:.4f}); "
        f"{step} steps in {train_s:.0f} s",
        flush=True,
    )

    version = args.out / "1"
    version.mkdir(parents=True, exist_ok=True)
    import onnx

    onnx.save(build_step_graph(model.weights()), str(version / "model.onnx"))
    worst = check_onnx(model, version / "model.onnx")
    print(f"ONNX vs torch: max |logit difference| {worst:.2e}", flush=True)
    if worst > 1e-3:
        raise SystemExit("the ONNX graph does not match the trained model")

    report = {
        "parameters": params,
        "embed": args.embed,
        "hidden": args.hidden,
        "layers": args.layers,
        "steps": step,
        "batch": args.batch,
        "length": args.length,
        "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - began, 1),
        "train_bytes": len(train),
        "held_out_bytes": len(test),
        "held_out_loss_nats_per_byte": round(test_loss, 4),
        "held_out_bits_per_byte": round(test_loss / math.log(2), 4),
        "held_out_perplexity": round(math.exp(test_loss), 3),
        "train_sample_loss_nats_per_byte": round(train_loss, 4),
        "onnx_max_logit_difference": worst,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = (
        f"{params:,} parameters; held-out loss {test_loss:.3f} nats/byte "
        f"(perplexity {math.exp(test_loss):.2f}) after {step} steps, {train_s / 60:.1f} min."
    )
    (args.out / "model.yaml").write_text(MODEL_YAML.format(summary=summary, eos=EOS))
    print(f"wrote {version / 'model.onnx'} and {args.out / 'model.yaml'}", flush=True)


if __name__ == "__main__":
    main()

"""tools/build_minilm_onnx.py writes the real all-MiniLM-L6-v2: its ONNX graph agrees with
a plain torch BERT forward of the same safetensors weights, and its embeddings rank a
paraphrase above unrelated sentences."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models-text" / "minilm"
sys.path.insert(0, str(ROOT / "tools"))
from build_minilm_onnx import package_model_dir  # noqa: E402

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

SENTENCES = [
    "A man is playing a guitar.",
    "The new movie is awesome and everyone should see it",
    "Batching requests of different lengths needs padding and an attention mask.",
    "x",
]


def torch_reference(weights: dict, config: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BERT as Hugging Face defines it, written out in torch, then mean pooling and L2."""
    f = torch.nn.functional
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    eps = config["layer_norm_eps"]
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask).float()
    batch, length = ids.shape

    def ln(x: torch.Tensor, p: str) -> torch.Tensor:
        return f.layer_norm(x, (hidden,), weights[p + ".weight"], weights[p + ".bias"], eps)

    def lin(x: torch.Tensor, p: str) -> torch.Tensor:
        return f.linear(x, weights[p + ".weight"], weights[p + ".bias"])

    x = (
        weights["embeddings.word_embeddings.weight"][ids_t]
        + weights["embeddings.position_embeddings.weight"][:length]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = ln(x, "embeddings.LayerNorm")
    bias = (1.0 - mask_t)[:, None, None, :] * torch.finfo(torch.float32).min
    for k in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{k}."

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, heads, hidden // heads).transpose(1, 2)

        q, kk, v = (split(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ kk.transpose(-1, -2) / math.sqrt(hidden // heads) + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, hidden)
        x = ln(lin(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = f.gelu(lin(x, p + "intermediate.dense"))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = (x * mask_t[..., None]).sum(1) / mask_t.sum(1, keepdim=True).clamp(min=1e-9)
    return f.normalize(pooled, dim=1).numpy()


@pytest.fixture(scope="module")
def session() -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(
        str(MODEL_DIR / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.enable_padding(pad_id=0)
    return tok


def test_onnx_matches_a_torch_bert_forward_of_the_same_weights(session, tokenizer) -> None:
    source = package_model_dir()
    weights = load_file(str(source / "model.safetensors"))
    config = json.loads((source / "config.json").read_text())
    encoded = tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in encoded], np.int64)
    mask = np.array([e.attention_mask for e in encoded], np.int64)
    assert mask.sum(1).min() < mask.shape[1]  # padding really is exercised
    with torch.no_grad():
        expected = torch_reference(weights, config, ids, mask)
    (got,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    assert got.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_a_paraphrase_is_nearer_than_unrelated_sentences(session, tokenizer) -> None:
    sentences = [
        "How do I bake bread at home?",
        "What is a recipe for homemade bread?",
        "The stock market fell sharply today.",
        "My cat sleeps all afternoon.",
    ]
    encoded = tokenizer.encode_batch(sentences)
    ids = np.array([e.ids for e in encoded], np.int64)
    mask = np.array([e.attention_mask for e in encoded], np.int64)
    (emb,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    similarity = emb @ emb[0]
    assert similarity[1] > 0.6
    assert similarity[1] > similarity[2] + 0.3
    assert similarity[1] > similarity[3] + 0.3

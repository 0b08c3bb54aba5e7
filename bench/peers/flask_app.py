"""Flask behind Gunicorn: the seed's design (PEER_BACKEND=torch) and its ORT variant (onnx).

    gunicorn --chdir bench/peers -w 1 --threads 2 -b 127.0.0.1:PORT flask_app:app

The seed's design, as the issue describes it: eager PyTorch MobileNet v1, one model
shared by Gunicorn's threads, torch's default thread count, and the image read per
request with Pillow at full size, resized (shorter side 256), centre-cropped to 224
and normalised in torch. The ORT variant keeps Flask and Gunicorn and swaps in one
ONNX Runtime session (PEER_ORT_THREADS intra-op threads) with the peers' decoder
(common.image_codec), and answers raw float32 tensors on /tensor (no decode).
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
from common import ROOT, image_codec, ort_session, ort_threads, tensor_from_bytes, top_k
from flask import Flask, jsonify, request
from PIL import Image

BACKEND = os.environ.get("PEER_BACKEND", "torch")
app = Flask(__name__)

if BACKEND == "torch":
    import torch

    sys.path.insert(0, str(ROOT / "tools"))
    from mobilenet_v1 import MobileNetV1

    torch.manual_seed(0)
    model = MobileNetV1().eval()
    MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def classify(data: bytes) -> list[dict[str, float | int]]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = image.size
        scale = 256 / min(w, h)
        image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
        w, h = image.size
        left, top = (w - 224) // 2, (h - 224) // 2
        image = image.crop((left, top, left + 224, top + 224))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        x = ((x - MEAN) / STD).unsqueeze(0)
        with torch.no_grad():
            logits = model(x)
        return top_k(logits.numpy())

else:
    session = ort_session(ort_threads())
    codec = image_codec()
    input_name = session.get_inputs()[0].name

    def classify(data: bytes) -> list[dict[str, float | int]]:
        return top_k(session.run(None, {input_name: codec.decode(data)})[0])

    @app.post("/tensor")
    def tensor():
        x = tensor_from_bytes(request.get_data())
        return jsonify({"predictions": top_k(session.run(None, {input_name: x})[0])})


@app.post("/predict")
def predict():
    return jsonify({"predictions": classify(request.get_data())})


@app.get("/health")
def health():
    return jsonify({"ok": True})

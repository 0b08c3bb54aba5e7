"""Flask behind Gunicorn with TensorFlow: the original article's web API.

    gunicorn --chdir bench/peers -w 1 --threads 2 -b 127.0.0.1:PORT flask_tf_app:app

Written as the article wrote it: the Keras model (`.keras`, built by
tools/build_keras_mobilenet.py) loaded once at import and shared by Gunicorn's threads,
TensorFlow's default thread counts, and per request the image read with Pillow,
resized (shorter side 256), centre-cropped to 224, scaled by MobileNet's own
`preprocess_input`, and `model.predict` on a batch of one. PEER_TF_MODEL points at
another `.keras` file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import tensorflow as tf
from flask import Flask, jsonify, request
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(
    os.environ.get("PEER_TF_MODEL", ROOT / "models-tf" / "mobilenet_keras" / "1" / "model.keras")
)
TOP_K = 5

app = Flask(__name__)
model = tf.keras.models.load_model(MODEL)
labels = (MODEL.parents[1] / "labels.txt").read_text().splitlines()


def classify(data: bytes) -> list[dict[str, object]]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    x = tf.keras.applications.mobilenet.preprocess_input(np.asarray(image, dtype=np.float32))
    probabilities = model.predict(x[np.newaxis], verbose=0)[0]
    best = np.argsort(probabilities)[::-1][:TOP_K]
    return [{"label": labels[i], "index": int(i), "score": float(probabilities[i])} for i in best]


@app.post("/predict")
def predict():
    return jsonify({"predictions": classify(request.get_data())})


@app.get("/health")
def health():
    return jsonify({"ok": True})

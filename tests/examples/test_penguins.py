"""examples/penguins: a tabular Python model whose body is CSV or JSON rows, a species per
row out; checked on fresh penguins drawn from the distributions it was trained on."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

from examples.penguins.train import FEATURES, SPECIES, sample
from tests.live_server import LiveServer


@pytest.fixture(scope="module")
def penguins() -> tuple[np.ndarray, np.ndarray]:
    return sample(np.random.default_rng(2024), 300)


def as_csv(features: np.ndarray) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(FEATURES)
    writer.writerows(features.tolist())
    return text.getvalue().encode()


def predict(server: LiveServer, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/penguins/predict", timeout=30, **kwargs)  # type: ignore[arg-type]


def v2_infer(server: LiveServer, features: list[list[float]]) -> httpx.Response:
    body = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP32",
                "shape": [len(features), 4],
                "data": features,
            }
        ]
    }
    return httpx.post(f"{server.url}/v2/models/penguins/infer", json=body, timeout=30)


def test_csv_rows_get_the_right_species(examples_server, penguins) -> None:
    features, species = penguins
    answer = predict(
        examples_server, content=as_csv(features), headers={"content-type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert len(rows) == len(features)
    predicted = np.array([SPECIES.index(row["species"]) for row in rows])
    assert (predicted == species).mean() > 0.9
    assert all(abs(sum(row["probabilities"].values()) - 1) < 1e-3 for row in rows)


def test_json_rows_as_objects_or_lists_answer_as_csv_does(examples_server, penguins) -> None:
    features = penguins[0][:20]
    from_csv = predict(
        examples_server, content=as_csv(features), headers={"content-type": "text/csv"}
    ).json()["predictions"]
    objects = [dict(zip(FEATURES, row, strict=True)) for row in features.tolist()]
    from_objects = predict(examples_server, json={"rows": objects}).json()["predictions"]
    from_lists = predict(examples_server, json={"rows": features.tolist()}).json()["predictions"]
    assert from_csv == from_objects == from_lists


def test_v2_infer_with_tensors_answers_as_v1_does(examples_server, penguins) -> None:
    features = penguins[0][:8]
    client = httpclient.InferenceServerClient(examples_server.url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("penguins")
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [
            {"name": "species", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ]
        inp = httpclient.InferInput("features", list(features.shape), "FP32")
        inp.set_data_from_numpy(features, binary_data=True)
        result = client.infer("penguins", [inp])
    finally:
        client.close()
    v1 = predict(examples_server, json={"rows": features.tolist()}).json()["predictions"]
    assert [s.decode() for s in result.as_numpy("species")] == [row["species"] for row in v1]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (8, 3)
    np.testing.assert_allclose(
        probabilities.max(axis=1), [row["probability"] for row in v1], atol=1e-4
    )


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        (
            {"content": b"bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n1,2,x,4\n"},
            "row 1: ['1', '2', 'x', '4'] are not all numbers",
        ),
        ({"content": b"bill_length_mm,body_mass_g\n39,3700\n"}, "row 1: missing bill_depth_mm"),
        ({"json": {"penguins": []}}, 'JSON {"rows": [...]}'),
        ({"json": {"rows": []}}, "no rows"),
        ({"json": {"rows": [[39, 18, 190, 3700]] * 10_001}}, "at most 10000"),
        ({"json": {"rows": [[39, 18, 190, -3700]]}}, "body_mass_g must be a positive number"),
    ],
    ids=["not-a-number", "missing-column", "no-rows-key", "no-rows", "too-many", "negative"],
)
def test_bad_input_is_a_clear_422_and_the_next_request_is_served(
    examples_server, kwargs, says
) -> None:
    if "content" in kwargs:
        kwargs = {**kwargs, "headers": {"content-type": "text/csv"}}
    answer = predict(examples_server, **kwargs)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["error"]
    ok = predict(examples_server, json={"rows": [[47.5, 15.0, 217.0, 5076.0]]})
    assert ok.json()["predictions"][0]["species"] == "Gentoo"


def test_a_bad_v2_request_among_concurrent_ones_fails_alone(examples_server, penguins) -> None:
    features = penguins[0]
    requests = [features[i * 10 : i * 10 + 10].tolist() for i in range(12)]
    requests[5][3][1] = -1.0
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda rows: v2_infer(examples_server, rows), requests))
    assert answers[5].status_code == 400
    assert "row 4: bill_depth_mm must be a positive number, not -1.0" in answers[5].json()["error"]
    for i, answer in enumerate(answers):
        if i != 5:
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["shape"] == [10]

"""The v2 protocol over gRPC through the official tritonclient.grpc, unchanged, against a
real `batchserve serve --grpc-port 0` on loopback.

Typed `contents` are sent with the protobuf stubs tritonclient ships
(`tritonclient.grpc.service_pb2`): its `InferInput` always sends raw contents.
Every bad call asserts its status code and then that the server still serves.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.server.grpc.service import SERVICE, UNARY_METHODS
from tests import onnx_builders
from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT, SAMPLES, LiveServer

MOBILENET = PROJECT_ROOT / "models-bench" / "mobilenet_v1"
MINILM = PROJECT_ROOT / "models-text" / "minilm"
SLOW_SIZE = 768
PROMPT = "def read_text(self):\n"
RED_CIRCLE = (SAMPLES / "red_circle.jpg").read_bytes()


def _repository(root: Path) -> Path:
    """The demo, MobileNet and MiniLM models, linked; `shapes_deadline` (a 1 ms deadline)
    and `slow` (one slow instance, a queue of one) for the bounds."""
    for name, source in (
        ("shapes", DEMO_REPOSITORY / "shapes"),
        ("docgen", DEMO_REPOSITORY / "docgen"),
        ("mobilenet_v1", MOBILENET),
        ("minilm", MINILM),
    ):
        (root / name).symlink_to(source, target_is_directory=True)
    deadline = root / "shapes_deadline"
    deadline.mkdir()
    (deadline / "1").symlink_to(DEMO_REPOSITORY / "shapes" / "1", target_is_directory=True)
    (deadline / "labels.txt").symlink_to(DEMO_REPOSITORY / "shapes" / "labels.txt")
    config = yaml.safe_load((DEMO_REPOSITORY / "shapes" / "model.yaml").read_text())
    config.update(name="shapes_deadline", warmup=False)
    config["scheduler"] = {"kind": "batch", "instances": 1, "threads": 1, "max_batch_size": 64}
    config["scheduler"]["timeout_ms"] = 1
    (deadline / "model.yaml").write_text(yaml.safe_dump(config))
    onnx_builders.slow_model(root / "slow" / "1" / "model.onnx", SLOW_SIZE)
    (root / "slow" / "model.yaml").write_text(
        "backend: onnx\nwarmup: false\n"
        "scheduler: {kind: pool, instances: 1, threads: 1, max_batch_size: 1, max_queue: 1}\n"
    )
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    assert (MOBILENET / "1" / "model.onnx").exists(), "run `make bench-model text-models`"
    repository = _repository(tmp_path_factory.mktemp("grpc-models"))
    with LiveServer([repository], grpc=True) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.grpc_address)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(server: LiveServer) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    """tritonclient's own generated stub, for requests its InferInput cannot build."""
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _image_input(tensor: np.ndarray, name: str = "input") -> grpcclient.InferInput:
    inp = grpcclient.InferInput(name, list(tensor.shape), "FP32")
    inp.set_data_from_numpy(tensor)
    return inp


def _typed_request(model: str, name: str, tensor: np.ndarray) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model)
    entry = request.inputs.add(name=name, datatype="FP32", shape=list(tensor.shape))
    entry.contents.fp32_contents.extend(tensor.ravel().tolist())
    return request


def _raw_output(response: service_pb2.ModelInferResponse, index: int = 0) -> np.ndarray:
    output = response.outputs[index]
    assert output.datatype == "FP32"
    return np.frombuffer(response.raw_output_contents[index], "<f4").reshape(list(output.shape))


def _serves_a_good_request(client: grpcclient.InferenceServerClient, in_process) -> None:
    result = client.infer("shapes", [_image_input(in_process.codec.decode(RED_CIRCLE))])
    assert in_process.labels[int(np.argmax(result.as_numpy("logits")))] == "red circle"


def _status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return exc.value.status()


# -- health and metadata ---------------------------------------------------------------


def test_the_method_table_is_the_protos_service():
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert SERVICE == "inference.GRPCInferenceService"
    unary = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    stream = unary.pop("ModelStreamInfer")
    assert stream == ("ModelInferRequest", "ModelStreamInferResponse")
    assert unary == {
        name: (request.DESCRIPTOR.name, response.DESCRIPTOR.name)
        for name, (request, response) in UNARY_METHODS.items()
    }


def test_live_ready_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("shapes")
    assert client.is_model_ready("shapes", "1")
    assert not client.is_model_ready("shapes", "7")
    assert not client.is_model_ready("nope")
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "batchserve"
    assert {"classification", "model_repository"} <= set(meta["extensions"])


def test_model_metadata_matches_http(client, server):
    for model in ("shapes", "mobilenet_v1", "minilm", "docgen"):
        meta = client.get_model_metadata(model, as_json=True)
        http = httpx.get(f"{server.url}/v2/models/{model}", timeout=10).json()
        assert meta["name"] == model and meta["versions"] == ["1"]
        assert meta["platform"] == http["platform"]
        for ours, theirs in ((meta["inputs"], http["inputs"]), (meta["outputs"], http["outputs"])):
            assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in ours] == [
                (t["name"], t["datatype"], t["shape"]) for t in theirs
            ]
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("nope")
    assert _status(missing) == "StatusCode.NOT_FOUND"
    assert "shapes" in missing.value.message()  # the models there are


def test_model_config_in_tritons_terms(client):
    config = client.get_model_config("shapes", as_json=True)["config"]
    assert config["name"] == "shapes" and config["backend"] == "onnxruntime"
    assert int(config["max_batch_size"]) >= 1
    (inp,) = config["input"]
    # With max_batch_size > 0, Triton's dims leave out the batch dimension.
    assert inp["data_type"] == "TYPE_FP32" and [int(d) for d in inp["dims"]] == [3, 64, 64]
    assert inp["format"] == "FORMAT_NCHW"
    assert config["output"][0]["label_filename"] == "labels.txt"
    assert config["parameters"]["task"]["string_value"] == "classify"
    assert '"size": [64, 64]' in config["parameters"]["preprocessing"]["string_value"]
    docgen = client.get_model_config("docgen", as_json=True)["config"]
    assert docgen["model_transaction_policy"]["decoupled"] is True
    assert docgen["input"][0]["data_type"] == "TYPE_STRING"


# -- inference -------------------------------------------------------------------------


def test_raw_and_typed_contents_on_the_demo_equal_in_process(client, stub, in_process, samples):
    for label, image in samples.items():
        tensor = in_process.codec.decode(image)
        expected = in_process.logits(image)
        raw = client.infer("shapes", [_image_input(tensor)]).as_numpy("logits")
        typed = _raw_output(stub.ModelInfer(_typed_request("shapes", "input", tensor)))
        np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(typed, expected, rtol=1e-4, atol=1e-4)
        assert in_process.labels[int(np.argmax(raw))] == label


def test_mobilenet_raw_typed_and_http_binary_agree(client, stub, server):
    import tritonclient.http as httpclient

    rng = np.random.default_rng(0)
    batch = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    raw = client.infer("mobilenet_v1", [_image_input(batch)]).as_numpy("logits")
    typed = _raw_output(stub.ModelInfer(_typed_request("mobilenet_v1", "input", batch)))
    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    inp = httpclient.InferInput("input", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch, binary_data=True)
    over_http = http.infer("mobilenet_v1", [inp]).as_numpy("logits")
    http.close()
    assert raw.shape == (2, 1000)
    np.testing.assert_allclose(typed, raw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(over_http, raw, rtol=1e-4, atol=1e-5)


def test_minilm_bytes_input_equals_the_embed_route(client, stub, server):
    texts = ["hello world", "a sentence about serving models", "ünïcödé"]
    inp = grpcclient.InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object))
    raw = client.infer("minilm", [inp]).as_numpy("embedding")
    request = service_pb2.ModelInferRequest(model_name="minilm")
    entry = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    entry.contents.bytes_contents.extend(t.encode() for t in texts)
    typed = _raw_output(stub.ModelInfer(request))
    http = httpx.post(f"{server.url}/v1/models/minilm/embed", json={"texts": texts}, timeout=30)
    expected = np.array(http.json()["embeddings"], dtype=np.float32)
    assert raw.shape == (3, 384)
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(typed, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, rtol=1e-4)


def test_classification_parameter_gives_top_k_labels(client, in_process, samples):
    for label, image in samples.items():
        tensor = in_process.codec.decode(image)
        output = grpcclient.InferRequestedOutput("logits", class_count=3)
        top = client.infer("shapes", [_image_input(tensor)], outputs=[output]).as_numpy("logits")
        assert top.shape == (1, 3)
        score, index, name = top[0, 0].decode().split(":", 2)
        assert name == label and in_process.labels[int(index)] == label
        assert float(score) == pytest.approx(float(in_process.logits(image).max()), rel=1e-3)


def test_request_id_and_version_come_back(client, in_process):
    tensor = in_process.codec.decode(RED_CIRCLE)
    result = client.infer("shapes", [_image_input(tensor)], model_version="1", request_id="abc")
    response = result.get_response()
    assert response.id == "abc" and response.model_name == "shapes"
    assert response.model_version == "1"


# -- generation: ModelInfer and ModelStreamInfer ----------------------------------------


def _prompt_input(prompt: str = PROMPT) -> grpcclient.InferInput:
    inp = grpcclient.InferInput("text_input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([prompt.encode()], dtype=object))
    return inp


class _Stream:
    """tritonclient's stream callback, collected per request id."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[object, object]] = queue.Queue()

    def __call__(self, result, error) -> None:
        self.events.put((result, error))

    def until_final(self, count: int, timeout: float = 60.0) -> tuple[dict[str, list[str]], list]:
        """Pieces by request id until `count` requests sent their final response."""
        pieces: dict[str, list[str]] = {}
        errors = []
        finished = 0
        while finished < count:
            result, error = self.events.get(timeout=timeout)
            if error is not None:
                errors.append(error)
                finished += 1
                continue
            response = result.get_response()
            if response.parameters["triton_final_response"].bool_param:
                assert not response.outputs  # the empty final response
                finished += 1
                continue
            pieces.setdefault(response.id, []).append(result.as_numpy("text_output")[0].decode())
        return pieces, errors


def test_streamed_generation_equals_the_whole_text(client, server):
    parameters = {"max_tokens": 60}
    whole = client.infer("docgen", [_prompt_input()], parameters=parameters)
    text = whole.as_numpy("text_output")[0].decode()
    http = httpx.post(
        f"{server.url}/v1/models/docgen/generate",
        json={"prompt": PROMPT, "max_tokens": 60},
        timeout=30,
    ).json()["text"]
    assert text == http and len(text) > 10
    stream = _Stream()
    client.start_stream(callback=stream)
    try:
        for request_id in ("a", "b"):  # two generations interleaved on one stream
            client.async_stream_infer(
                "docgen",
                [_prompt_input()],
                request_id=request_id,
                parameters=parameters,
                enable_empty_final_response=True,
            )
        pieces, errors = stream.until_final(2)
    finally:
        client.stop_stream()
    assert not errors
    for request_id in ("a", "b"):
        assert "".join(pieces[request_id]) == text
        assert len(pieces[request_id]) > 10  # tokens streamed as separate responses


def test_a_stream_error_ends_its_request_only(client):
    stream = _Stream()
    client.start_stream(callback=stream)
    try:
        client.async_stream_infer(
            "nope", [_prompt_input()], request_id="bad", enable_empty_final_response=True
        )
        client.async_stream_infer(
            "docgen",
            [_prompt_input()],
            request_id="good",
            parameters={"max_tokens": 8},
            enable_empty_final_response=True,
        )
        pieces, errors = stream.until_final(2)
    finally:
        client.stop_stream()
    (error,) = errors
    assert "NOT_FOUND" in error.message() and "nope" in error.message()
    assert "".join(pieces["good"])


def test_a_stream_on_a_tensor_model_answers_once(client, in_process):
    stream = _Stream()
    client.start_stream(callback=stream)
    tensor = in_process.codec.decode(RED_CIRCLE)
    try:
        client.async_stream_infer("shapes", [_image_input(tensor)], request_id="one")
        result, error = stream.events.get(timeout=30)
    finally:
        client.stop_stream()
    assert error is None and result.get_response().id == "one"
    np.testing.assert_allclose(
        result.as_numpy("logits"), in_process.logits(RED_CIRCLE), rtol=1e-4, atol=1e-4
    )


# -- the model repository ----------------------------------------------------------------


def test_repository_index_unload_and_load(client, in_process):
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {m["name"] for m in index} >= {"shapes", "docgen", "mobilenet_v1", "minilm"}
    assert all(m["state"] == "READY" for m in index)
    client.unload_model("shapes_deadline")
    assert not client.is_model_ready("shapes_deadline")
    states = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert states["shapes_deadline"]["state"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException) as unloaded:
        client.get_model_metadata("shapes_deadline")
    assert _status(unloaded) == "StatusCode.NOT_FOUND"
    client.load_model("shapes_deadline")
    assert client.is_model_ready("shapes_deadline")
    with pytest.raises(InferenceServerException) as unknown:
        client.load_model("nope")
    assert _status(unknown) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as overrides:
        client.load_model("shapes", config='{"max_batch_size": 4}')
    assert _status(overrides) == "StatusCode.INVALID_ARGUMENT"
    _serves_a_good_request(client, in_process)


# -- bad calls: the code, then a good call ---------------------------------------------


def test_a_bad_shape_is_invalid_argument(client, in_process):
    with pytest.raises(InferenceServerException) as bad:
        client.infer("shapes", [_image_input(np.zeros((1, 3, 32, 32), np.float32))])
    assert _status(bad) == "StatusCode.INVALID_ARGUMENT"
    assert "[1, 3, 32, 32]" in bad.value.message() and "[-1, 3, 64, 64]" in bad.value.message()
    _serves_a_good_request(client, in_process)


def test_bad_contents_are_invalid_argument(stub, client, in_process):
    short = _typed_request("shapes", "input", np.zeros((1, 3, 64, 64), np.float32))
    del short.inputs[0].contents.fp32_contents[-1]
    mixed = _typed_request("shapes", "input", np.zeros((1, 3, 64, 64), np.float32))
    mixed.raw_input_contents.append(np.zeros((1, 3, 64, 64), np.float32).tobytes())
    wrong_field = service_pb2.ModelInferRequest(model_name="shapes")
    entry = wrong_field.inputs.add(name="input", datatype="FP32", shape=[1, 3, 64, 64])
    entry.contents.int_contents.extend([0] * 3 * 64 * 64)
    for request, words in (
        (short, "needs 12288 elements"),
        (mixed, "send every input one way"),
        (wrong_field, "fp32_contents"),
    ):
        with pytest.raises(grpc.RpcError) as bad:
            stub.ModelInfer(request)
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert words in bad.value.details()
    _serves_a_good_request(client, in_process)


def test_a_missing_model_is_not_found(client, in_process):
    tensor = in_process.codec.decode(RED_CIRCLE)
    for model, version in (("nope", ""), ("shapes", "9")):
        with pytest.raises(InferenceServerException) as missing:
            client.infer(model, [_image_input(tensor)], model_version=version)
        assert _status(missing) == "StatusCode.NOT_FOUND"
    _serves_a_good_request(client, in_process)


def test_a_version_in_unicode_digits_is_not_found_not_internal(client, in_process):
    """'²' passes str.isdigit() and fails int(): a missing version, not a server error."""
    tensor = in_process.codec.decode(RED_CIRCLE)
    with pytest.raises(InferenceServerException) as missing:
        client.infer("shapes", [_image_input(tensor)], model_version="\u00b2")
    assert _status(missing) == "StatusCode.NOT_FOUND"
    assert client.is_model_ready("shapes", "\u00b2") is False
    _serves_a_good_request(client, in_process)


def test_the_clients_deadline_is_deadline_exceeded(client, in_process):
    batch = np.zeros((32, 3, 224, 224), np.float32)
    with pytest.raises(InferenceServerException) as late:
        client.infer("mobilenet_v1", [_image_input(batch)], client_timeout=0.005)
    assert _status(late) == "StatusCode.DEADLINE_EXCEEDED"
    _serves_a_good_request(client, in_process)


def test_the_models_deadline_is_deadline_exceeded_from_the_server(client, in_process):
    batch = in_process.codec.decode(RED_CIRCLE).repeat(64, axis=0)
    with pytest.raises(InferenceServerException) as late:
        client.infer("shapes_deadline", [_image_input(batch)])
    assert _status(late) == "StatusCode.DEADLINE_EXCEEDED"
    # The server's own words (the scheduler's or the call's), not the client's deadline.
    message = late.value.message()
    assert re.search(r"deadline passed after \d+ ms in the queue|within 0\.001 s", message)
    _serves_a_good_request(client, in_process)


def test_a_full_queue_is_unavailable(server, client, in_process):
    """One slow instance and a queue of one: of 8 calls at once, the surplus is refused."""
    x = np.ones((1, SLOW_SIZE), np.float32)
    codes: list[str] = []

    def call() -> None:
        with grpcclient.InferenceServerClient(server.grpc_address) as own:
            try:
                own.infer("slow", [_image_input(x, "x")])
                codes.append("OK")
            except InferenceServerException as exc:
                codes.append(exc.status())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert "OK" in codes and "StatusCode.UNAVAILABLE" in codes
    assert set(codes) <= {"OK", "StatusCode.UNAVAILABLE"}
    _serves_a_good_request(client, in_process)


def test_a_message_over_the_limit_is_resource_exhausted(client, in_process):
    big = np.zeros((440, 3, 64, 64), np.float32)  # 21.6 MB, over the default 20 MB
    with pytest.raises(InferenceServerException) as over:
        client.infer("shapes", [_image_input(big)])
    assert _status(over) == "StatusCode.RESOURCE_EXHAUSTED"
    _serves_a_good_request(client, in_process)


def test_unsupported_methods_are_unimplemented_with_a_reason(client, in_process):
    with pytest.raises(InferenceServerException) as stats:
        client.get_inference_statistics("shapes")
    assert _status(stats) == "StatusCode.UNIMPLEMENTED" and "/metrics" in stats.value.message()
    with pytest.raises(InferenceServerException) as shm:
        client.register_system_shared_memory("r", "/key", 64)
    assert _status(shm) == "StatusCode.UNIMPLEMENTED" and "shared memory" in shm.value.message()
    with pytest.raises(InferenceServerException) as logs:
        client.update_log_settings({"log_verbose_level": 1})
    assert _status(logs) == "StatusCode.UNIMPLEMENTED" and "--log-level" in logs.value.message()
    _serves_a_good_request(client, in_process)


def test_grpc_calls_are_counted_in_metrics(client, server, in_process):
    _serves_a_good_request(client, in_process)
    with pytest.raises(InferenceServerException):
        client.infer("nope", [_image_input(np.zeros((1, 3, 64, 64), np.float32))])
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert (
        'batchserve_grpc_requests_total{code="OK",method="/inference.GRPCInferenceService/'
        'ModelInfer",model="shapes",version=""}'
    ) in text
    assert 'code="NOT_FOUND",method="/inference.GRPCInferenceService/ModelInfer",model=""' in text
    assert 'model="nope"' not in text  # a name the client made up mints no series

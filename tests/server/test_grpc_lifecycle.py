"""gRPC's life beside HTTP: off unless asked for, the bearer token, and a graceful stop
that answers the calls in flight (tritonclient.grpc against a real server)."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests import onnx_builders
from tests.live_server import DEMO_REPOSITORY, LiveServer

PROMPT = "class Path:\n"
SLOW_SIZE = 768


def _prompt(prompt: str = PROMPT) -> grpcclient.InferInput:
    inp = grpcclient.InferInput("text_input", [1], "BYTES")
    inp.set_data_from_numpy(np.array([prompt.encode()], dtype=object))
    return inp


def test_grpc_is_off_by_default(demo_server):
    assert demo_server.grpc_address == ""
    assert "grpc listening" not in demo_server.output


def test_the_bearer_token_guards_every_method_but_liveness(in_process, samples):
    token = "s3cret-token"
    with LiveServer(
        [DEMO_REPOSITORY], env={"BATCHSERVE_AUTH_TOKEN": token}, wait_ready=False, grpc=True
    ) as server:
        server.wait_ready(90, headers={"authorization": f"Bearer {token}"})
        with grpcclient.InferenceServerClient(server.grpc_address) as client:
            image = next(iter(samples.values()))
            inp = grpcclient.InferInput("input", [1, 3, 64, 64], "FP32")
            inp.set_data_from_numpy(in_process.codec.decode(image))
            assert client.is_server_live()  # open, like /v2/health/live
            for headers in (None, {"authorization": "Bearer s3cret-tokeN"}, {"x": token}):
                with pytest.raises(InferenceServerException) as refused:
                    client.infer("shapes", [inp], headers=headers)
                assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
                assert "bearer token" in refused.value.message()
                with pytest.raises(InferenceServerException) as meta:
                    client.get_model_metadata("shapes", headers=headers)
                assert meta.value.status() == "StatusCode.UNAUTHENTICATED"
            # A stream is refused as it opens, through tritonclient's callback.
            errors: queue.Queue[object] = queue.Queue()
            client.start_stream(callback=lambda result, error: errors.put(error))
            error = errors.get(timeout=30)
            client.stop_stream()
            assert isinstance(error, InferenceServerException)
            assert error.status() == "StatusCode.UNAUTHENTICATED"
            good = {"authorization": f"Bearer {token}"}
            result = client.infer("shapes", [inp], headers=good)
            assert result.as_numpy("logits").shape == (1, 24)
            assert client.is_server_ready(headers=good)


def test_sigterm_answers_the_grpc_calls_in_flight(tmp_path):
    """Calls queued on a slow model and an open stream at SIGTERM are all answered in
    full, the server exits 0, and a call after the stop is refused."""
    onnx_builders.slow_model(tmp_path / "slow" / "1" / "model.onnx", SLOW_SIZE)
    (tmp_path / "slow" / "model.yaml").write_text(
        "backend: onnx\nwarmup: false\n"
        "scheduler: {kind: pool, instances: 1, threads: 1, max_batch_size: 1, max_queue: 64}\n"
    )
    (tmp_path / "docgen").symlink_to(DEMO_REPOSITORY / "docgen", target_is_directory=True)
    x = np.ones((1, SLOW_SIZE), np.float32)
    inp = grpcclient.InferInput("x", [1, SLOW_SIZE], "FP32")
    inp.set_data_from_numpy(x)
    parameters = {"max_tokens": 1000, "ignore_eos": True}
    with LiveServer([tmp_path], grpc=True) as server:
        with grpcclient.InferenceServerClient(server.grpc_address) as client:
            expected = client.infer("slow", [inp]).as_numpy("y")
            text = client.infer("docgen", [_prompt()], parameters=parameters)
            text = text.as_numpy("text_output")[0].decode()
            streamed: queue.Queue[tuple[object, object]] = queue.Queue()
            client.start_stream(callback=lambda result, error: streamed.put((result, error)))
            client.async_stream_infer(
                "docgen", [_prompt()], parameters=parameters, enable_empty_final_response=True
            )
            first, error = streamed.get(timeout=30)  # the stream is under way
            assert error is None
            answers: queue.Queue[object] = queue.Queue()
            for _ in range(8):  # one instance: they queue behind each other, tens of ms each
                client.async_infer(
                    "slow", [inp], callback=lambda result, error: answers.put(error or result)
                )
            done = [answers.get(timeout=60)]  # the first is answered: the others are queued
            server.terminate()
            done += [answers.get(timeout=60) for _ in range(7)]
            for answer in done:
                assert not isinstance(answer, Exception), answer
                np.testing.assert_allclose(answer.as_numpy("y"), expected, rtol=1e-5)
            pieces = [first.as_numpy("text_output")[0].decode()]
            while True:
                result, error = streamed.get(timeout=60)
                assert error is None, error
                if result.get_response().parameters["triton_final_response"].bool_param:
                    break
                pieces.append(result.as_numpy("text_output")[0].decode())
            assert "".join(pieces) == text
            client.stop_stream()  # the stream was in flight too: the server waited for it
            with pytest.raises(InferenceServerException):
                client.infer("slow", [inp])
        assert server.process.wait(30) == 0
    assert "gRPC stopped" in server.output


def test_a_taken_port_fails_the_start_clearly():
    with LiveServer([DEMO_REPOSITORY], grpc=True) as first:
        port = first.grpc_address.rsplit(":", 1)[1]
        with pytest.raises(RuntimeError) as failed:
            LiveServer([DEMO_REPOSITORY], "--grpc-port", port, ready_timeout=60)
        assert f"gRPC cannot listen on 127.0.0.1:{port}" in str(failed.value)
        assert first.process.poll() is None  # the first server is untouched

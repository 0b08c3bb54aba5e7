"""Auth, metrics, request ids, and a graceful stop that loses no accepted request."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx

from tests.live_server import DEMO_REPOSITORY, LiveServer


def _predict(url: str, image: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/shapes/predict",
        content=image,
        headers={"content-type": "image/jpeg", **(headers or {})},
        timeout=30,
    )


def test_bearer_token_guards_everything_but_the_health_probes(samples):
    image = next(iter(samples.values()))
    token = "s3cret-token"
    with LiveServer(
        [DEMO_REPOSITORY], env={"BATCHSERVE_AUTH_TOKEN": token}, wait_ready=False
    ) as server:
        good = {"authorization": f"Bearer {token}"}
        server.wait_ready(90, headers=good)
        # An orchestrator's probes carry no secret: liveness and readiness reveal nothing.
        assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        for path in ("/v2/models/shapes/ready", "/metrics", "/v2/models/shapes", "/v1/models"):
            r = httpx.get(f"{server.url}{path}")
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
            assert "token" in r.json()["error"]
        wrong = {"authorization": "Bearer s3cret-tokeN"}
        assert _predict(server.url, image, wrong).status_code == 401
        assert _predict(server.url, image, good).status_code == 200
        assert httpx.get(f"{server.url}/metrics", headers=good).status_code == 200


def test_metrics_after_traffic(demo_server, samples):
    image = next(iter(samples.values()))
    for _ in range(3):
        assert _predict(demo_server.url, image).status_code == 200
    assert _predict(demo_server.url, b"junk").status_code == 422
    text = httpx.get(f"{demo_server.url}/metrics").text
    for needle in (
        'batchserve_requests_total{model="shapes",route="/v1/models/{name}/predict",'
        'status="200",version=""}',
        'status="422"',
        'batchserve_stage_seconds_count{model="shapes",stage="decode"}',
        'batchserve_stage_seconds_count{model="shapes",stage="queue"}',
        'batchserve_stage_seconds_count{model="shapes",stage="inference"}',
        'batchserve_batch_size_count{model="shapes",version="1"}',
        'batchserve_queue_depth{model="shapes",version="1"}',
        'batchserve_instances_busy{model="shapes",version="1"}',
        "batchserve_image_bytes_count",
        "process_resident_memory_bytes",
    ):
        assert needle in text, needle


def test_request_id_is_echoed_or_made(demo_server):
    r = httpx.get(f"{demo_server.url}/v2/health/live", headers={"x-request-id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert len(httpx.get(f"{demo_server.url}/v2/health/live").headers["x-request-id"]) == 32


def test_access_log_has_one_json_line_per_request(demo_server):
    httpx.get(f"{demo_server.url}/v2/health/live", headers={"x-request-id": "log-me-1"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "log-me-1" not in demo_server.output:
        time.sleep(0.05)
    (line,) = [ln for ln in demo_server.lines if "log-me-1" in ln]
    assert '"path": "/v2/health/live"' in line and '"status": 200' in line


def test_sigterm_under_load_loses_no_accepted_request(samples):
    """Every request the server took in (its access log names it) is answered 200.

    A connection the server never read (refused, or still in the kernel's backlog when
    the listener closed) was not accepted: its client may see an error, but the server
    must not have taken a request it then failed to answer.
    """
    images = list(samples.values())
    server = LiveServer([DEMO_REPOSITORY], "--drain-timeout", "20")
    outcomes: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        for n in range(500):
            if stop.is_set():
                return
            request_id = f"term-{i}-{n}"
            try:
                # A fresh connection each time, so a closed listener shows as such.
                r = _predict(
                    server.url,
                    images[(i + n) % len(images)],
                    {"connection": "close", "x-request-id": request_id},
                )
                outcome = f"status {r.status_code}"
            except httpx.TransportError as exc:
                outcome = f"transport: {type(exc).__name__}"
            with lock:
                outcomes[request_id] = outcome
            if outcome.startswith("transport"):
                return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.terminate()
    code = server.process.wait(30)
    stop.set()
    for t in threads:
        t.join(30)
    server.stop()
    assert code == 0, server.output
    accepted = {
        json.loads(line.split("batchserve.access: ", 1)[1])["request_id"]
        for line in server.lines
        if "batchserve.access: " in line and "term-" in line
    }
    assert len(accepted) > 16
    not_answered = {rid: outcomes.get(rid) for rid in accepted if outcomes.get(rid) != "status 200"}
    assert not not_answered, not_answered
    assert "stopped" in server.output


def test_a_client_that_hangs_up_has_its_queued_request_dropped(tmp_path):
    from tests import onnx_builders

    onnx_builders.slow_model(tmp_path / "slow" / "1" / "model.onnx")
    (tmp_path / "slow" / "model.yaml").write_text(
        "scheduler: {kind: pool, instances: 1, threads: 1, max_queue: 64}\nwarmup: false\n"
    )
    body = (
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,768],"data":['
        + b",".join([b"1"] * 768)
        + b"]}]}"
    )
    head = (
        "POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with LiveServer([tmp_path]) as server:
        port = int(server.url.rsplit(":", 1)[1])
        # 20 clients send a request each and hang up at once, without reading.
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(head + body)
        time.sleep(1.0)
        started = time.monotonic()
        r = httpx.post(f"{server.url}/v2/models/slow/infer", content=body, timeout=30)
        waited = time.monotonic() - started
        assert r.status_code == 200
        text = httpx.get(f"{server.url}/metrics").text
    calls = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('batchserve_batch_size_count{model="slow"')
    )
    # Most of the abandoned requests never ran: they were dropped from the queue.
    assert calls < 12, (calls, waited)


def test_a_drain_timeout_under_a_second_is_kept_with_a_stalled_upload():
    """`--drain-timeout 0.5` means half a second, not "wait forever": SIGTERM with one
    upload that stopped half-way exits within the timeout plus the stop's own steps."""
    from tests.raw_http import RawConnection, port_of

    with LiveServer([DEMO_REPOSITORY], "--drain-timeout", "0.5") as server:
        stalled = RawConnection(port_of(server.url))
        stalled.send(
            b"POST /v1/models/shapes/predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n" + b"\xff" * 1000
        )
        time.sleep(0.3)  # the server has read the headers and waits for the rest
        started = time.monotonic()
        server.terminate()
        try:
            code = server.process.wait(10)
        finally:
            stalled.close()
        took = time.monotonic() - started
    assert code == 0, server.output
    assert took < 4.0, f"exited {took:.1f} s after SIGTERM"


def test_requests_of_clients_that_reset_are_not_decoded(tmp_path, samples):
    """Requests whose clients sent them and reset the connection while they waited for a
    slot are dropped before their image is decoded: a live client behind them is not
    made to wait for work nobody will read."""
    from tests import onnx_builders
    from tests.raw_http import RawConnection, build_request, port_of

    # About 0.1 s a call: few of the 40 requests can finish before their clients reset.
    onnx_builders.slow_image_model(tmp_path / "slowimg" / "1" / "model.onnx", repeats=24)
    (tmp_path / "slowimg" / "model.yaml").write_text(
        "preprocessing: {size: [16, 16], resize: stretch}\nlabels: null\nwarmup: false\n"
        "scheduler: {kind: pool, instances: 1, threads: 1, max_batch_size: 1, max_queue: 256}\n"
    )
    image = next(iter(samples.values()))
    request = build_request(
        "POST", "/v1/models/slowimg/predict", image, {"content-type": "image/jpeg"}
    )

    def decodes(url: str) -> float:
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith('batchserve_stage_seconds_count{model="slowimg",stage="decode"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    with LiveServer([tmp_path], "--decode-threads", "2") as server:
        port = port_of(server.url)
        connections = [RawConnection(port) for _ in range(40)]
        for conn in connections:
            conn.send(request)
        time.sleep(0.5)  # every body is read; a few are running, the rest wait for a slot
        for conn in connections:
            conn.reset()
        r = httpx.post(
            f"{server.url}/v1/models/slowimg/predict",
            content=image,
            headers={"content-type": "image/jpeg"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        decoded = decodes(server.url)
        text = httpx.get(f"{server.url}/metrics").text
    # Admission lets 2 * 1 worker * batch 1 + 2 decode threads = 4 hold a slot at once.
    assert decoded < 20, (decoded, "requests ran to the end; the model is too fast for the test")
    assert 'status="500"' not in text
    assert 'status="499"' in text

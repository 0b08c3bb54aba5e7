"""backend: python — a model author's class loaded from the model's folder, and served.

In-process: the refusal without `allow_code` (before the file is read), modules that
never meet in `sys.modules`, declared inputs/outputs, the list contract. Over HTTP, on
a real server: a bad input in a batch fails alone, a broken contract is a clear error,
a refused model says which key to set, and the server keeps serving.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from batchserve.errors import ConfigError, InferenceError, ModelLoadError
from batchserve.repository.loader import read_config, runtime_options
from batchserve.runtimes import get_runtime
from batchserve.runtimes.python import PythonInstance
from tests.live_server import LiveServer
from tests.runtimes.python_models import BROKEN, DOUBLER, MARKS_IMPORT, write_model


def load(folder: Path) -> PythonInstance:
    """Load version 1 of a model folder as the server does."""
    config = read_config(folder / "model.yaml")
    runtime = get_runtime(config.backend)
    instance = runtime.load(folder / "1", runtime_options(config, runtime, None, folder))
    assert isinstance(instance, PythonInstance)
    return instance


def test_model_code_is_refused_without_allow_code_before_it_is_read(tmp_path: Path) -> None:
    folder = write_model(tmp_path, "marker", MARKS_IMPORT, "Marker", allow_code=False)
    with pytest.raises(ModelLoadError, match=r"allow_code: true") as refused:
        load(folder)
    assert "model.py" in str(refused.value)
    assert not (folder / "imported").exists()  # nothing of it ran


def test_two_models_with_a_model_py_each_never_meet_in_sys_modules(tmp_path: Path) -> None:
    before = set(sys.modules)
    doubler = load(write_model(tmp_path, "doubler", DOUBLER, "Doubler"))
    broken = load(write_model(tmp_path, "broken", BROKEN, "Broken"))
    again = load(tmp_path / "doubler")  # a second instance of one model: its own module
    added = set(sys.modules) - before
    assert "model" not in sys.modules
    assert len(added) == 3
    modules = {sys.modules[name].NAME for name in added}
    assert modules == {"doubler", "broken"}
    assert doubler.run([{"value": 2.0}])[0]["double"] == 4.0
    doubler.python_state().factor = 10.0  # state of one instance is not the other's
    assert again.run([{"value": 2.0}])[0]["double"] == 4.0
    for instance in (doubler, broken, again):
        instance.close()
    assert set(sys.modules) - before == set()
    assert not list(tmp_path.rglob("__pycache__"))  # no bytecode written into the folder


def test_load_gets_the_version_folder_and_model_yaml_options(tmp_path: Path) -> None:
    source = DOUBLER + (
        "\n\nclass Recorder(Doubler):\n"
        "    def load(self, version_dir, options):\n"
        "        super().load(version_dir, options)\n"
        "        self.where = version_dir\n"
    )
    extra = "python: {class: 'model:Recorder', options: {factor: 3}}\n"
    folder = write_model(tmp_path, "rec", source, "Recorder")
    (folder / "model.yaml").write_text("backend: python\nallow_code: true\n" + extra)
    instance = load(folder)
    assert instance.python_state().where == folder / "1"
    assert instance.run([{"value": 2.0}]) == [{"double": 6.0, "seen": [1]}]


def test_inputs_come_from_the_class_or_model_yaml_and_two_differing_ones_are_refused(
    tmp_path: Path,
) -> None:
    doubler = load(write_model(tmp_path, "d", DOUBLER, "Doubler"))
    assert doubler.describe() == {
        "inputs": [{"name": "value", "datatype": "FP32", "shape": [-1]}],
        "outputs": [],
    }
    declared = "outputs:\n  - {name: out, datatype: BYTES, shape: [-1]}\n"
    broken = load(write_model(tmp_path, "b", BROKEN, "Broken", extra=declared))
    assert broken.describe()["outputs"] == [{"name": "out", "datatype": "BYTES", "shape": [-1]}]
    clash = "inputs:\n  - {name: value, datatype: INT64, shape: [-1]}\n"
    with pytest.raises(ModelLoadError, match=r"Doubler.inputs and model.yaml's inputs"):
        load(write_model(tmp_path, "c", DOUBLER, "Doubler", extra=clash))


def test_a_predict_that_breaks_the_list_contract_is_named(tmp_path: Path) -> None:
    broken = load(write_model(tmp_path, "b", BROKEN, "Broken"))
    with pytest.raises(InferenceError, match=r"Broken.predict broke its contract: .* 1 results"):
        broken.run(["a", "b"])


def test_a_missing_class_file_or_option_is_a_clear_load_error(tmp_path: Path) -> None:
    folder = write_model(tmp_path, "m", DOUBLER, "Nope")
    with pytest.raises(ModelLoadError, match=r"defines no class 'Nope'"):
        load(folder)
    (folder / "model.yaml").write_text("backend: python\nallow_code: true\npython: {class: x:Y}\n")
    with pytest.raises(ModelLoadError, match=r"x.py does not exist"):
        load(folder)
    (folder / "model.yaml").write_text("backend: python\nallow_code: true\npython: {}\n")
    with pytest.raises(ConfigError, match=r"options.class: Field required"):
        load(folder)
    (folder / "model.py").write_text("raise RuntimeError('no such weights')\n")
    (folder / "model.yaml").write_text("backend: python\nallow_code: true\npython: {class: m:X}\n")
    (folder / "model.py").rename(folder / "m.py")
    with pytest.raises(ModelLoadError, match=r"importing it failed: RuntimeError: no such weights"):
        load(folder)


# -- over HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("python-models")
    write_model(root, "doubler", DOUBLER, "Doubler")
    write_model(root, "broken", BROKEN, "Broken")
    write_model(root, "refused", MARKS_IMPORT, "Marker", allow_code=False)
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[LiveServer]:
    with LiveServer([repository]) as live:
        yield live


def test_without_a_decode_the_body_is_json_and_the_result_made_json(server: LiveServer) -> None:
    answer = httpx.post(f"{server.url}/v1/models/doubler/predict", json={"value": 21}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"]["double"] == 42.0
    bad = httpx.post(f"{server.url}/v1/models/doubler/predict", content=b"{not json", timeout=30)
    assert bad.status_code == 422
    assert "not valid JSON" in bad.json()["error"]


def test_v2_infer_hands_predict_a_dict_of_arrays(server: LiveServer) -> None:
    body = {"inputs": [{"name": "value", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}]}
    answer = httpx.post(f"{server.url}/v2/models/doubler/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [
        {"name": "double", "datatype": "FP32", "shape": [3], "data": [2.0, 4.0, 6.0]}
    ]
    meta = httpx.get(f"{server.url}/v2/models/doubler", timeout=10).json()
    assert meta["platform"] == "python"
    assert meta["inputs"] == [{"name": "value", "datatype": "FP32", "shape": [-1]}]


def wait_for_queue(server: LiveServer, model: str, depth: int, within_s: float) -> bool:
    """Whether the model's queue (the server's own metric) reaches `depth` in time."""
    line = f'batchserve_queue_depth{{model="{model}",version="1"}} {float(depth)}'
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if line in httpx.get(f"{server.url}/metrics", timeout=5).text:
            return True
        time.sleep(0.05)
    return False


def test_one_bad_input_in_a_batch_fails_alone(server: LiveServer) -> None:
    url = f"{server.url}/v1/models/doubler/predict"
    answers: dict[int, httpx.Response] = {}

    def send(i: int, value: float, hold_s: float = 0.0) -> None:
        answers[i] = httpx.post(url, json={"value": value, "hold_s": hold_s}, timeout=30)

    holder = threading.Thread(target=send, args=(0, 1.0, 3.0))
    holder.start()
    time.sleep(0.3)  # the worker is now inside predict for 3 s: the rest queue up
    values = [2.0, 3.0, -1.0, 4.0, 5.0, 6.0, 7.0]
    threads = [threading.Thread(target=send, args=(i + 1, v)) for i, v in enumerate(values)]
    for thread in threads:
        thread.start()
    queued = wait_for_queue(server, "doubler", len(values), within_s=2.5)
    for thread in [holder, *threads]:
        thread.join(30)
    assert queued, "the seven requests did not all queue behind the held one"
    bad = answers[3]
    assert bad.status_code == 422
    assert bad.json()["error"] == (
        "Doubler.predict: ValueError: value must not be negative, got -1.0"
    )
    good = [answers[i] for i in answers if i != 3]
    assert all(a.status_code == 200 for a in good), [a.text for a in good]
    assert sorted(a.json()["predictions"]["double"] for a in good) == [2, 4, 6, 8, 10, 12, 14]
    # The seven queued requests ran as one batch, which failed; then each ran alone.
    seen = max((a.json()["predictions"]["seen"] for a in good), key=len)
    assert 7 in seen and seen[seen.index(7) + 1 :].count(1) >= 6
    follow = httpx.post(url, json={"value": 8}, timeout=30)
    assert follow.status_code == 200 and follow.json()["predictions"]["double"] == 16.0


def test_a_broken_list_contract_is_a_clear_error_and_the_server_serves_on(
    server: LiveServer,
) -> None:
    answer = httpx.post(f"{server.url}/v1/models/broken/predict", json=[1], timeout=30)
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "Broken.predict broke its contract: it returned 0 results for 1 inputs"
    )
    after = httpx.post(f"{server.url}/v1/models/doubler/predict", json={"value": 1}, timeout=30)
    assert after.status_code == 200


def test_a_refused_model_says_which_key_allows_its_code(
    server: LiveServer, repository: Path
) -> None:
    index = httpx.post(f"{server.url}/v2/repository/index", json={}, timeout=10).json()
    refused = next(entry for entry in index if entry["name"] == "refused")
    assert refused["state"] == "UNAVAILABLE"
    assert "`allow_code: true`" in refused["reason"]
    answer = httpx.post(f"{server.url}/v1/models/refused/predict", json=[1], timeout=10)
    assert answer.status_code == 503
    assert "allow_code" in answer.json()["error"]
    assert not (repository / "refused" / "imported").exists()


def test_an_unloaded_python_model_loads_again_with_its_code_changed(tmp_path: Path) -> None:
    folder = write_model(tmp_path, "doubler", DOUBLER, "Doubler")
    with LiveServer([tmp_path]) as live:
        assert httpx.post(f"{live.url}/v1/models/doubler/predict", json={"value": 1}).is_success
        assert httpx.post(f"{live.url}/v2/repository/models/doubler/unload").status_code == 200
        gone = httpx.post(f"{live.url}/v1/models/doubler/predict", json={"value": 1.0})
        assert gone.status_code in (404, 503)
        source = (folder / "model.py").read_text()
        (folder / "model.py").write_text(source.replace('get("factor", 2)', 'get("factor", 5)'))
        assert httpx.post(f"{live.url}/v2/repository/models/doubler/load").status_code == 200
        back = httpx.post(f"{live.url}/v1/models/doubler/predict", json={"value": 2.0})
        assert back.json()["predictions"]["double"] == 10.0  # the new code, not a cached module

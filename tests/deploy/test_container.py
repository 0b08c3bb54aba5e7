"""The Dockerfiles, checked without a Docker daemon (CI has no registry): their commands
parse with the real CLI, the health check answers on a server run as the image runs it,
and paths and ports agree with each other and with the README."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.deploy.manifests import Dockerfile, known_variables, parse_serve, start_like
from tests.live_server import PROJECT_ROOT

DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]


@pytest.fixture(params=DOCKERFILES)
def dockerfile(request) -> Dockerfile:
    return Dockerfile.read(PROJECT_ROOT / request.param)


def test_the_image_runs_batchserve_serve_as_a_non_root_user(dockerfile):
    command = [*dockerfile.exec_form("ENTRYPOINT"), *dockerfile.exec_form("CMD")]
    assert command[:2] == ["batchserve", "serve"]
    args = parse_serve(command[1:])
    assert args.host == "0.0.0.0"
    assert str(args.port) in dockerfile.last("EXPOSE").split()
    user = dockerfile.last("USER")
    assert user not in ("root", "0")
    assert any(f"--uid {user}" in run or f" {user}" in run for run in dockerfile.all("RUN"))


def test_the_baked_in_repository_is_where_the_image_looks(dockerfile):
    env = dockerfile.env()
    assert set(k for k in env if k.startswith("BATCHSERVE_")) <= known_variables()
    repository = env["BATCHSERVE_REPOSITORY"]
    copies = [rest.split() for rest in dockerfile.all("COPY")]
    source = next(parts[0] for parts in copies if parts[-1] == repository)
    models = PROJECT_ROOT / source
    assert (models / "shapes" / "model.yaml").is_file()
    if dockerfile.path.name == "Dockerfile":
        assert dockerfile.last("FROM").startswith("python:3.11-slim")


def test_the_health_check_answers_with_auth_on(dockerfile):
    healthcheck = dockerfile.exec_form("HEALTHCHECK")
    assert "/v2/health/ready" in healthcheck[-1]
    cmd = dockerfile.exec_form("CMD")
    with start_like(cmd, dockerfile.env(), token="image-token") as server:
        port = server.url.rsplit(":", 1)[1]
        code = healthcheck[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert healthcheck[0] == "python"
        done = subprocess.run([sys.executable, *healthcheck[1:-1], code], timeout=30)
        assert done.returncode == 0
        server.stop()
        # Once the server is gone the check fails, as Docker must see it.
        done = subprocess.run([sys.executable, *healthcheck[1:-1], code], capture_output=True)
        assert done.returncode != 0


def test_the_readme_documents_the_image_ports_and_paths():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "docker build -t batchserve ." in readme
    assert "-p 8000:8000" in readme
    assert "/models" in readme

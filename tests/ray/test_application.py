"""The application builder's typed arguments, the serve flags that make them, and the
README's Serve config file, checked against Ray's own schema (no cluster needed)."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import ValidationError
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from batchserve.cli import build_parser
from batchserve.ray import RayAppArgs, app
from batchserve.ray.command import app_args
from batchserve.ray.replica import replica_cpus
from batchserve.server.command import settings_from_args
from batchserve.server.settings import ServerSettings
from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT

SERVER = {"repositories": [str(DEMO_REPOSITORY)]}


def test_deployment_options_come_from_the_args():
    args = RayAppArgs(
        server=ServerSettings(repositories=("models",), drain_timeout_s=7),
        num_replicas=3,
        ray_actor_options={"num_cpus": 0.5, "num_gpus": 1},
    )
    options = args.deployment_options()
    assert options["name"] == "batchserve"
    assert options["num_replicas"] == 3
    assert options["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 1}
    assert options["graceful_shutdown_timeout_s"] == 7
    assert options["max_ongoing_requests"] == 128
    assert "autoscaling_config" not in options
    scaled = RayAppArgs(
        server=ServerSettings(repositories=("models",)),
        num_replicas=None,
        autoscaling_config={"min_replicas": 1, "max_replicas": 4},
    ).deployment_options()
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"server": {}}, "server.repositories"),
        ({"server": {**SERVER, "port": 9000}}, "server.port"),
        ({"server": {**SERVER, "host": "0.0.0.0"}}, "server.host"),
        ({"server": SERVER, "num_replicas": 2, "autoscaling_config": {}}, "num_replicas"),
        ({"server": SERVER, "replicas": 2}, "replicas"),
        ({"server": {**SERVER, "max_top_k": 0}}, "max_top_k"),
        ({"server": {**SERVER, "grpc_port": 8001}}, "server.grpc_port"),
    ],
)
def test_bad_args_are_refused_naming_the_field(args, named):
    with pytest.raises(ValidationError, match=re.escape(named)):
        app(args)


def test_the_builder_takes_a_config_files_dict_or_typed_args():
    built = app({"server": SERVER, "num_replicas": 2})
    assert isinstance(built, Application)
    assert isinstance(app(RayAppArgs.model_validate({"server": SERVER})), Application)


def test_the_readme_serve_config_is_valid_for_ray_and_the_builder():
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(# serve_config\.yaml.*?)```", readme, re.S)
    assert block, "the README's Ray Serve section shows a serve_config.yaml"
    config = ServeDeploySchema.parse_obj(yaml.safe_load(block.group(1)))
    (application,) = config.applications
    assert application.import_path == "batchserve.ray:app"
    parsed = RayAppArgs.model_validate(application.args)
    assert parsed.server.repositories == ("s3://my-bucket/prod/models",)
    assert isinstance(app(application.args), Application)


def test_serve_flags_become_the_builders_args():
    parser = build_parser("serve")
    argv = [
        "serve", "--ray", "--repository", "models", "--host", "0.0.0.0", "--port", "9000",
        "--auth-token", "t", "--ray-num-cpus", "0.5", "--ray-num-gpus", "1",
        "--ray-autoscaling", '{"min_replicas": 1, "max_replicas": 3}',
    ]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.ray == "local"
    built = app_args(args, settings_from_args(args))
    assert built.server.repositories == ("models",)
    assert built.server.auth_token == "t"
    assert "port" not in built.server.model_fields_set  # the proxy's, not the replicas'
    assert built.num_replicas is None
    assert built.autoscaling_config == {"min_replicas": 1, "max_replicas": 3}
    assert built.ray_actor_options == {"num_cpus": 0.5, "num_gpus": 1}
    assert parser.parse_args(["serve", "--ray", "auto"]).ray == "auto"
    assert parser.parse_args(["serve"]).ray is None


def test_bad_ray_flags_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        build_parser("serve").parse_args(["serve", "--ray", "--ray-autoscaling", "[1]"])
    assert "expected a JSON object" in capsys.readouterr().err


@pytest.mark.parametrize(("cpus", "cores"), [(0.5, 1), (1.0, 1), (2.5, 2), (4.0, 4)])
def test_a_replicas_cores_are_its_reserved_cpus_rounded_down(cpus, cores):
    assert replica_cpus({"CPU": cpus}) == cores


def test_serve_ray_refuses_a_grpc_port_in_one_line(capsys):
    from batchserve.ray import command

    args = build_parser("serve").parse_args(["serve", "--ray", "--grpc-port", "8001"])
    assert command.run(args, settings_from_args(args)) == 2
    assert "server.grpc_port" in capsys.readouterr().err

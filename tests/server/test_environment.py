"""`serve` flags from environment variables, and bad flags and variables refused with one
line that names them."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

import httpx
import pytest

from batchserve.server.command import add_arguments
from batchserve.server.environment import (
    BadEnvironment,
    defaults_from_environment,
    env_flags,
)
from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchserve serve")
    add_arguments(parser)
    return parser


def _parse(argv: list[str], env: dict[str, str]):
    """`batchserve serve ARGV` as parsed with `env` as the whole environment."""
    parser = _serve_parser()
    parser.set_defaults(**defaults_from_environment(parser, env))
    return parser.parse_args(argv)


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`batchserve serve` in a fresh process; for arguments it must refuse at once."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSERVE_")}
    clean.pop("PORT", None)
    return subprocess.run(
        [sys.executable, "-m", "batchserve", "serve", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
    )


def test_every_flag_has_a_variable_named_after_it():
    variables = {f.flag: f.variable for f in env_flags(_serve_parser())}
    assert variables["--auth-token"] == "BATCHSERVE_AUTH_TOKEN"
    assert variables["--max-body-mb"] == "BATCHSERVE_MAX_BODY_MB"
    assert variables["--repository"] == "BATCHSERVE_REPOSITORY"
    assert variables["--no-url-fetch"] == "BATCHSERVE_NO_URL_FETCH"
    assert len(variables) >= 18


def test_variables_set_defaults_and_flags_win():
    env = {
        "BATCHSERVE_REQUEST_TIMEOUT": "5",
        "BATCHSERVE_REPOSITORY": "a,s3://bucket/b",
        "BATCHSERVE_NO_URL_FETCH": "yes",
        "BATCHSERVE_MEMORY_BUDGET": "400MB",
        "BATCHSERVE_DRAIN_TIMEOUT": "500ms",
    }
    args = _parse([], env)
    assert args.request_timeout == 5.0
    assert args.repository == ["a", "s3://bucket/b"]
    assert args.no_url_fetch is True
    assert args.memory_budget == 400_000_000
    assert args.drain_timeout == 0.5
    args = _parse(["--request-timeout", "7", "--repository", "c"], env)
    assert args.request_timeout == 7.0
    assert args.repository == ["c"]  # replaced, not added to


def test_platform_port_is_honoured_below_batchserve_port():
    assert _parse([], {"PORT": "5001"}).port == 5001
    assert _parse([], {"PORT": "5001", "BATCHSERVE_PORT": "5002"}).port == 5002
    assert _parse(["--port", "5003"], {"PORT": "5001"}).port == 5003
    assert _parse([], {}).port == 8000


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BATCHSERVE_PORT": "eighty"}, "BATCHSERVE_PORT='eighty'"),
        ({"PORT": "99999"}, "PORT='99999'"),
        ({"BATCHSERVE_AUTH_TOKEN": ""}, "BATCHSERVE_AUTH_TOKEN=''"),
        ({"BATCHSERVE_NO_URL_FETCH": "maybe"}, "BATCHSERVE_NO_URL_FETCH"),
        ({"BATCHSERVE_URL_ALLOW_NETWORK": "10.0.0.0/8,junk"}, "BATCHSERVE_URL_ALLOW_NETWORK"),
        (
            {"BATCHSERVE_REQUESTTIMEOUT": "5"},
            "unknown environment variable BATCHSERVE_REQUESTTIMEOUT",
        ),
    ],
)
def test_bad_variables_are_refused_by_name(env, named):
    with pytest.raises(BadEnvironment, match=named.replace("*", r"\*").replace("(", r"\(")):
        defaults_from_environment(_serve_parser(), env)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--port", "70000"], {}, "argument --port"),
        (["--request-timeout", "0"], {}, "argument --request-timeout"),
        (["--max-body-mb", "0"], {}, "argument --max-body-mb"),
        (["--url-allow-network", "junk"], {}, "argument --url-allow-network"),
        (["--auth-token", ""], {}, "argument --auth-token"),
        ([], {"BATCHSERVE_AUTH_TOKEN": ""}, "BATCHSERVE_AUTH_TOKEN"),
        ([], {"BATCHSERVE_DRAIN_TIMEOUT": "-1"}, "BATCHSERVE_DRAIN_TIMEOUT"),
    ],
)
def test_the_server_refuses_to_start_with_one_line_naming_the_flag(args, env, named):
    done = _serve(*args, env=env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the usage, one line: the error
    assert last.startswith("batchserve serve: error:")
    assert named in last


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_configured_only_by_its_environment(tmp_path):
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATCHSERVE_")},
        "PORT": str(port),
        "BATCHSERVE_REPOSITORY": str(DEMO_REPOSITORY),
        "BATCHSERVE_AUTH_TOKEN": "from-env",
        "BATCHSERVE_PROFILE_BUDGET": "1",
        "BATCHSERVE_CACHE_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "batchserve", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited"
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            raise AssertionError("not ready in 60 s")
        assert httpx.get(f"{url}/v2/models/shapes").status_code == 401
        headers = {"authorization": "Bearer from-env"}
        assert httpx.get(f"{url}/v2/models/shapes", headers=headers).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


def test_the_readme_lists_every_variable():
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [f.variable for f in env_flags(_serve_parser()) if f"`{f.variable}`" not in readme]
    assert missing == []

"""One real two-node Ray cluster on loopback for the tests of this folder.

Both nodes are local processes (`ray.cluster_utils.Cluster`), each with 2 logical
CPUs, no dashboard, every address 127.0.0.1: `node_ip_address` for the nodes, and
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 so that Ray's "which address is mine" answers
loopback too (without it, the driver and Serve turn 127.0.0.1 into the machine's
outward address). The Serve proxy listens on 127.0.0.1 on a free port.

Both nodes share one machine and one address, so only the head node runs a proxy (two
could not bind the same port), and it spreads requests over every node's replicas
instead of preferring its own node's: what a proxy on each node behind a load balancer
gives a real cluster.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
from ray import serve
from ray.cluster_utils import Cluster

from tests.live_server import DEMO_REPOSITORY

NODE_CPUS = 2
OBJECT_STORE_BYTES = 80 * 1024 * 1024
TOKEN = "ray-test-token"


@dataclass(frozen=True)
class LocalCluster:
    """The running cluster: its address, its two node ids, and the proxy's base URL."""

    address: str
    node_ids: frozenset[str]
    proxy_url: str
    repository: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _repository(root: Path) -> Path:
    """The demo models, with shapes as a pool of one-thread instances: a pool has one
    worker per core the replica sees, so its worker count shows the replica's CPUs."""
    repo = root / "models"
    shutil.copytree(DEMO_REPOSITORY / "docgen", repo / "docgen")
    shutil.copytree(DEMO_REPOSITORY / "shapes", repo / "shapes")
    yaml = (repo / "shapes" / "model.yaml").read_text()
    assert "kind: auto" in yaml
    (repo / "shapes" / "model.yaml").write_text(
        yaml.replace("kind: auto", "kind: pool\n  threads: 1")
    )
    return repo


@pytest.fixture(scope="package")
def cluster() -> Iterator[LocalCluster]:
    scratch = Path(tempfile.mkdtemp(prefix="bs-ray-"))
    # Set by tests/ray/__init__.py before Ray was imported; if something imported Ray
    # earlier, ray.init would dial the machine's outward address and hang.
    assert not ray._private.ray_constants.ENABLE_RAY_CLUSTER, "Ray was imported too early"
    mp = pytest.MonkeyPatch()
    mp.setenv("BATCHSERVE_CACHE_DIR", str(scratch / "cache"))
    mp.setenv("RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING", "0")
    node = {
        "num_cpus": NODE_CPUS,
        "node_ip_address": "127.0.0.1",
        "object_store_memory": OBJECT_STORE_BYTES,
    }
    local = Cluster(
        initialize_head=True,
        head_node_args={**node, "include_dashboard": False},
    )
    try:
        local.add_node(**node)
        local.wait_for_nodes(timeout=60)
        ray.init(address=local.address, log_to_driver=False)
        port = _free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        node_ids = frozenset(n["NodeID"] for n in ray.nodes() if n["Alive"])
        assert len(node_ids) == 2
        proxy = f"http://127.0.0.1:{port}"
        yield LocalCluster(local.address, node_ids, proxy, _repository(scratch))
    finally:
        serve.shutdown()
        ray.shutdown()
        local.shutdown()
        mp.undo()
        shutil.rmtree(scratch, ignore_errors=True)

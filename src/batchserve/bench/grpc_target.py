"""A gRPC target: `grpc://host:port/MODEL[/versions/V]`, the v2 protocol's ModelInfer.

Each image is decoded as the server would (its preprocessing read from the server's
own ModelConfig, or `--preprocessing`) and sent as one `ModelInferRequest`, built
and serialized once before the run: the tensor as ``raw_input_contents`` (binary,
the default) or as typed ``contents`` (``--v2-encoding json``, the gRPC counterpart
of JSON tensors). Port 8001 (Triton's) when the URL gives none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc

from batchserve.bench.grpc_client import CHANNEL_OPTIONS, GrpcConnection
from batchserve.bench.targets import TargetError, load_images, read_preprocessing, require_loopback
from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.codecs.images import ImageCodec
from batchserve.config import ImagePreprocessing

GRPC_SCHEME = "grpc://"
DEFAULT_PORT = 8001
_URL = re.compile(
    r"^grpc://(?P<host>\[[^\]]+\]|[^/:]+)(?::(?P<port>\d+))?"
    r"/(?P<name>[^/]+)(?:/versions/(?P<version>\d+))?/?$"
)
_SERVICE = "/inference.GRPCInferenceService/"


@dataclass(frozen=True)
class GrpcTarget:
    """A model's ModelInfer on a gRPC server, and the requests sent to it in rotation."""

    url: str
    host: str
    port: int
    model: str
    version: str
    requests: tuple[bytes, ...]
    #: gRPC metadata sent with every call (`-H`, e.g. authorization).
    metadata: tuple[tuple[str, str], ...]
    description: str
    method: str = "ModelInfer"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def mean_body_bytes(self) -> float:
        return sum(len(r) for r in self.requests) / len(self.requests)

    async def connect(self, timeout: float) -> GrpcConnection:
        return await GrpcConnection.open(self.address, self.requests, self.metadata, timeout)


def is_grpc_url(url: str) -> bool:
    return url.startswith(GRPC_SCHEME)


def parse_grpc_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, model, version or "") of a ``grpc://`` target URL."""
    match = _URL.match(url)
    if not match:
        raise TargetError(f"a gRPC target is grpc://HOST[:PORT]/MODEL[/versions/V], not {url!r}")
    host = match.group("host").strip("[]")
    return (
        host,
        int(match.group("port") or DEFAULT_PORT),
        match.group("name"),
        match.group("version") or "",
    )


def build_grpc_target(
    url: str,
    *,
    images: Path | None = None,
    headers: Sequence[tuple[str, str]] = (),
    v2_encoding: Literal["binary", "json"] = "binary",
    v2_input: str | None = None,
    preprocessing: Path | None = None,
    allow_remote: bool = False,
    timeout: float = 10.0,
) -> GrpcTarget:
    """Everything the command line says about a gRPC target, checked and encoded."""
    host, port, model, version = parse_grpc_url(url)
    if not allow_remote:
        require_loopback(host)
    metadata = tuple((k.lower(), v) for k, v in headers)
    paths = load_images(images)
    given = read_preprocessing(preprocessing) if preprocessing else None
    input_name, served = v2_input, None
    if not (given and v2_input):
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        input_name, served = model_info(address, model, version, metadata, timeout)
        input_name = v2_input or input_name
    chosen = given or served
    if chosen is None:
        raise TargetError(
            "the server reports no image preprocessing for this model; "
            "pass --preprocessing FILE (YAML, model.yaml's preprocessing block)"
        )
    if not input_name:
        raise TargetError("cannot tell the model's input name; pass --v2-input NAME")
    codec = ImageCodec(chosen)
    requests = []
    for path in paths:
        tensor = codec.decode(path.read_bytes())
        request = pb.ModelInferRequest(model_name=model, model_version=version)
        entry = request.inputs.add(name=input_name, datatype="FP32", shape=list(tensor.shape))
        if v2_encoding == "json":
            entry.contents.fp32_contents.extend(tensor.ravel().tolist())
        else:
            request.raw_input_contents.append(tensor.astype("<f4").tobytes())
        requests.append(request.SerializeToString())
    contents = "typed contents" if v2_encoding == "json" else "raw contents"
    what = f"{len(paths)} image(s) as v2 {contents} '{input_name}'"
    return GrpcTarget(
        url, host, port, model, version, tuple(requests), metadata, f"gRPC {url}: {what}"
    )


def model_info(
    address: str,
    model: str,
    version: str,
    metadata: Sequence[tuple[str, str]],
    timeout: float,
) -> tuple[str | None, ImagePreprocessing | None]:
    """The model's first input and image preprocessing, asked of the server itself
    (ModelMetadata, and ModelConfig's `preprocessing` parameter)."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:

        def call(method: str, request: object, response_type: type) -> object:
            rpc = channel.unary_unary(
                _SERVICE + method,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
            return rpc(request, timeout=timeout, metadata=tuple(metadata))

        try:
            meta = call(
                "ModelMetadata",
                pb.ModelMetadataRequest(name=model, version=version),
                pb.ModelMetadataResponse,
            )
            config = call(
                "ModelConfig",
                pb.ModelConfigRequest(name=model, version=version),
                pb.ModelConfigResponse,
            )
        except grpc.RpcError as exc:
            raise TargetError(
                f"cannot read model {model!r} from {address}: {exc.code().name}: {exc.details()}"
            ) from None
    input_name = meta.inputs[0].name if meta.inputs else None  # type: ignore[attr-defined]
    parameters = config.config.parameters  # type: ignore[attr-defined]
    preprocessing = None
    if "preprocessing" in parameters:
        raw = json.loads(parameters["preprocessing"].string_value)
        preprocessing = ImagePreprocessing.model_validate(raw)
        input_name = preprocessing.input or input_name
    return input_name, preprocessing

"""What the load generator sends: an endpoint and a rotation of ready-made HTTP requests.

Every request is encoded to its wire bytes once, before the run, so that sending one
costs the generator a single socket write: the generator's CPU must go to the run,
not to building bodies. Three kinds of body:

- ``image``: the raw image file as the body (batchserve's ``/predict`` route);
- ``v2``: the image decoded to the model's input tensor, as a KServe/Triton v2
  ``infer`` request (binary tensor extension, or JSON), with the preprocessing that
  the server's ``/v2/models/{name}/config`` reports or a YAML file gives;
- ``template``: any body, from a file in which ``{{image_b64}}`` stands for the
  image in base64 (for servers that take JSON).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import yaml

from batchserve.bench.http_client import HttpConnection
from batchserve.codecs.images import ImageCodec
from batchserve.codecs.v2 import HEADER_LENGTH_HEADER
from batchserve.config import ImagePreprocessing
from batchserve.repository.bundled import SAMPLES

DEFAULT_URL = "http://127.0.0.1:8000/v1/models/shapes/predict"
IMAGE_MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}
#: The placeholder a body template uses for the image.
IMAGE_PLACEHOLDER = "{{image_b64}}"
_V2_INFER = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")

BodyFormat = Literal["image", "v2", "template"]


class TargetError(ValueError):
    """The target cannot be built: a bad URL, a refused host, no images, a bad template."""


@dataclass(frozen=True)
class Endpoint:
    """An ``http://`` URL taken apart into what a socket and a request line need."""

    url: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise TargetError(f"only http:// URLs can be load-tested, not {url!r}")
        if not parts.hostname:
            raise TargetError(f"no host in {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(url=url, host=parts.hostname, port=parts.port or 80, path=path)

    @property
    def base(self) -> str:
        """``http://host:port``, for the server's other routes (metrics, v2 config)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"


def require_loopback(host: str) -> None:
    """Refuse a host unless every address it resolves to is a loopback address.

    A load test is a flood of requests: pointed at someone else's server by mistake it
    is an attack, so anything off this machine needs ``--allow-remote``.
    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetError(f"cannot resolve {host!r}: {exc}") from None
    addresses = {info[4][0] for info in infos}
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote:
        raise TargetError(
            f"{host} resolves to {', '.join(remote)}, which is not loopback; "
            "pass --allow-remote to load-test another machine"
        )


@dataclass(frozen=True)
class Payload:
    """One request body, its content type and any headers it needs (v2's header length)."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Target:
    """An endpoint and the requests sent to it, in rotation, already encoded."""

    endpoint: Endpoint
    method: str
    requests: tuple[bytes, ...]
    description: str

    @property
    def url(self) -> str:
        return self.endpoint.url

    def request(self, index: int) -> bytes:
        return self.requests[index % len(self.requests)]

    async def connect(self, timeout: float) -> HttpConnection:
        """A keep-alive HTTP/1.1 connection to the endpoint."""
        return await HttpConnection.open(
            self.endpoint.host, self.endpoint.port, self.request, timeout
        )

    @property
    def mean_body_bytes(self) -> float:
        return sum(len(r) for r in self.requests) / len(self.requests)


def encode_request(
    endpoint: Endpoint,
    method: str,
    payload: Payload | None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """An HTTP/1.1 keep-alive request as wire bytes."""
    lines = [
        f"{method} {endpoint.path} HTTP/1.1",
        f"Host: {endpoint.host_header}",
        "User-Agent: batchserve-bench",
        "Accept: */*",
        "Connection: keep-alive",
    ]
    body = b""
    if payload is not None:
        body = payload.body
        lines.append(f"Content-Type: {payload.content_type}")
        lines.extend(f"{k}: {v}" for k, v in payload.headers)
    if payload is not None or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{k}: {v}" for k, v in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def load_images(source: Path | None) -> list[Path]:
    """The images to send: a file, every image in a folder, or the bundled samples."""
    folder = SAMPLES if source is None else source
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise TargetError(f"no such image file or folder: {folder}")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_MEDIA_TYPES)
    if not found:
        raise TargetError(f"no .jpg, .png or .webp image in {folder}")
    return found


def image_payloads(paths: Sequence[Path]) -> list[Payload]:
    """Each image file as a raw body with its media type."""
    return [Payload(p.read_bytes(), IMAGE_MEDIA_TYPES[p.suffix.lower()]) for p in paths]


def template_payloads(template: str, paths: Sequence[Path], content_type: str) -> list[Payload]:
    """The template with the image in base64 put in; one body if it has no placeholder."""
    if IMAGE_PLACEHOLDER not in template:
        return [Payload(template.encode(), content_type)]
    return [
        Payload(
            template.replace(
                IMAGE_PLACEHOLDER, base64.b64encode(p.read_bytes()).decode("ascii")
            ).encode(),
            content_type,
        )
        for p in paths
    ]


def v2_payloads(
    paths: Sequence[Path],
    codec: ImageCodec,
    input_name: str,
    encoding: Literal["binary", "json"] = "binary",
) -> list[Payload]:
    """Each image decoded as the server would, sent as a v2 ``infer`` request."""
    payloads = []
    for path in paths:
        tensor = codec.decode(path.read_bytes())
        entry: dict[str, object] = {
            "name": input_name,
            "datatype": "FP32",
            "shape": list(tensor.shape),
        }
        if encoding == "json":
            entry["data"] = tensor.ravel().tolist()
            body = json.dumps({"inputs": [entry]}).encode()
            payloads.append(Payload(body, "application/json"))
            continue
        raw = tensor.astype("<f4").tobytes()
        entry["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps({"inputs": [entry]}).encode()
        payloads.append(
            Payload(
                header + raw,
                "application/octet-stream",
                ((HEADER_LENGTH_HEADER, str(len(header))),),
            )
        )
    return payloads


def v2_model_info(
    endpoint: Endpoint, headers: Sequence[tuple[str, str]], timeout: float = 10.0
) -> tuple[str | None, ImagePreprocessing | None]:
    """The input name and image preprocessing of the model a v2 ``infer`` URL names.

    Asked of the server itself (``/v2/models/{name}/config`` and its metadata), so that
    the bench sends exactly the tensor the model expects.
    """
    match = _V2_INFER.match(endpoint.path.split("?")[0])
    if not match:
        raise TargetError(f"{endpoint.path} is not a v2 /v2/models/NAME[/versions/V]/infer route")
    name = match.group("name")
    preprocessing: ImagePreprocessing | None = None
    input_name: str | None = None
    with httpx.Client(base_url=endpoint.base, headers=dict(headers), timeout=timeout) as client:
        try:
            config = client.get(f"/v2/models/{name}/config")
            if config.status_code == 200 and config.json().get("preprocessing"):
                preprocessing = ImagePreprocessing.model_validate(config.json()["preprocessing"])
            meta = client.get(f"/v2/models/{name}")
            if meta.status_code == 200 and meta.json().get("inputs"):
                input_name = meta.json()["inputs"][0]["name"]
        except (httpx.HTTPError, ValueError) as exc:
            raise TargetError(f"cannot read model {name!r} from {endpoint.base}: {exc}") from None
    if preprocessing is not None and preprocessing.input:
        input_name = preprocessing.input
    return input_name, preprocessing


def detect_format(endpoint: Endpoint, template: Path | None) -> BodyFormat:
    """``auto``: a template if one is given, v2 for an ``/infer`` route, else raw images."""
    if template is not None:
        return "template"
    if _V2_INFER.match(endpoint.path.split("?")[0]):
        return "v2"
    return "image"


def build_target(
    url: str,
    *,
    images: Path | None = None,
    body_format: BodyFormat | Literal["auto"] = "auto",
    template: Path | None = None,
    content_type: str = "application/json",
    method: str = "POST",
    headers: Sequence[tuple[str, str]] = (),
    v2_encoding: Literal["binary", "json"] = "binary",
    v2_input: str | None = None,
    preprocessing: Path | None = None,
    allow_remote: bool = False,
) -> Target:
    """Everything the command line says about what to send, checked and encoded."""
    endpoint = Endpoint.parse(url)
    if not allow_remote:
        require_loopback(endpoint.host)
    fmt = detect_format(endpoint, template) if body_format == "auto" else body_format
    if fmt == "template":
        if template is None:
            raise TargetError("--format template needs --body-template FILE")
        text = template.read_text()
        # A template without the placeholder is one fixed body: no images needed.
        paths = load_images(images) if IMAGE_PLACEHOLDER in text else []
        payloads = template_payloads(text, paths, content_type)
        what = f"body template {template.name} x {len(payloads)} body(ies)"
    elif fmt == "image":
        paths = load_images(images)
        payloads = image_payloads(paths)
        what = f"{len(paths)} image(s) as raw bodies"
    else:
        paths = load_images(images)
        given = read_preprocessing(preprocessing) if preprocessing else None
        name, served = (v2_input, None) if given and v2_input else v2_model_info(endpoint, headers)
        chosen = given or served
        if chosen is None:
            raise TargetError(
                "the server reports no image preprocessing for this model; "
                "pass --preprocessing FILE (YAML, model.yaml's preprocessing block)"
            )
        input_name = v2_input or name
        if not input_name:
            raise TargetError("cannot tell the model's input name; pass --v2-input NAME")
        payloads = v2_payloads(paths, ImageCodec(chosen), input_name, v2_encoding)
        what = f"{len(paths)} image(s) as v2 {v2_encoding} tensors '{input_name}'"
    requests = tuple(encode_request(endpoint, method, p, headers) for p in payloads)
    return Target(endpoint, method, requests, f"{method} {url}: {what}")


def read_preprocessing(path: Path) -> ImagePreprocessing:
    """A YAML file's preprocessing block (model.yaml's, or the block alone)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        if isinstance(raw, dict) and "preprocessing" in raw:
            raw = raw["preprocessing"]
        return ImagePreprocessing.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise TargetError(f"{path}: not a preprocessing block: {exc}") from None

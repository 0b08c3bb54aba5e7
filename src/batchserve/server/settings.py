"""Server settings: validated once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ServerSettings(BaseModel):
    """Everything the HTTP and gRPC layers need; none of it changes a model's behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Folders or s3://bucket/prefix URLs, as given (a Path would fold the '//' of a URL).
    repositories: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: The v2 protocol over gRPC on this port (0: a free one); None: no gRPC.
    grpc_port: int | None = Field(None, ge=0, le=65535)
    auth_token: str | None = None
    max_body_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_top_k: int = Field(100, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    drain_timeout_s: float = Field(20.0, ge=0)
    max_connections: int = Field(
        1024, gt=0, description="past it the idlest connection is closed, or 503 if all are busy"
    )
    # Connection-level bounds (see server/connections.py), each from its phase's start.
    idle_timeout_s: float = Field(5.0, gt=0, description="no byte of a next request")
    header_timeout_s: float = Field(10.0, gt=0, description="first byte to end of headers")
    body_timeout_s: float = Field(60.0, gt=0, description="end of headers to end of body")
    max_header_bytes: int = Field(64 * 1024, gt=0, description="request line and headers")
    decode_threads: int | None = Field(None, description="pool for big v2 JSON tensors, text")
    profile_budget_s: float = Field(6.0, ge=0)
    # Image-by-URL fetching (see codecs/url_fetch/).
    url_fetch: bool = True
    url_allow_hosts: tuple[str, ...] = ()
    url_allow_networks: tuple[str, ...] = ()
    url_allow_private: bool = False
    url_allow_loopback: bool = False
    url_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    url_timeout_s: float = Field(10.0, gt=0)
    # The model repository (see repository/).
    memory_budget_bytes: int | None = Field(None, gt=0, description="None: load every model")
    poll_interval_s: float | None = Field(None, gt=0, description="None: no polling")
    cache_dir: Path | None = Field(None, description="where s3:// versions are cached")
    s3_endpoint_url: str | None = None

    @field_validator("repositories", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value

"""A real S3 server for the tests: moto in server mode, in this process, on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoS3:
    """An S3 endpoint on a free loopback port; `stop()` makes it unreachable."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._running = True

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", **CREDENTIALS
        )

    def upload(self, folder: Path, bucket: str, prefix: str = "") -> None:
        """Copy a local repository folder into the bucket, creating it if needed."""
        client = self.client()
        if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{rel}" if prefix else rel, Body=path.read_bytes()
            )

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._server.stop()

    def __enter__(self) -> MotoS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

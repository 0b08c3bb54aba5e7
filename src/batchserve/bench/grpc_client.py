"""The load generator's gRPC client: v2 ModelInfer calls on a channel of its own.

Each connection is a channel with its own HTTP/2 connection (a local subchannel
pool), as each HTTP client has its own keep-alive connection, so `--concurrency N`
means N connections for both protocols. Requests are serialized `ModelInferRequest`s
made before the run and sent as bytes; answers are only counted, never parsed.

Error kinds: ``grpc_<code>`` for a status the server answered (``grpc_unavailable``
for a full queue, ``grpc_invalid_argument``...); ``timeout`` when the call's own
deadline (``--timeout``) passed; ``connect`` when no connection could be made and
``disconnect`` when it broke under a call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc

from batchserve.bench.stats import DISCONNECT, TIMEOUT

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
#: Unlimited message sizes on the client side: the server's are the ones that count.
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
)
#: Channel closes still running; held so that none is collected half done.
_closing: set[asyncio.Task[None]] = set()


class GrpcConnection:
    """A channel carrying one ModelInfer at a time; request `i` is `requests[i % n]`."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        requests: Sequence[bytes],
        metadata: Sequence[tuple[str, str]],
    ) -> None:
        self._channel = channel
        self._call = channel.unary_unary(MODEL_INFER)  # bytes in, bytes out
        self._requests = requests
        self._metadata = tuple(metadata)
        self.usable = True
        self.last_used = 0.0
        self._closed = False

    @classmethod
    async def open(
        cls,
        address: str,
        requests: Sequence[bytes],
        metadata: Sequence[tuple[str, str]],
        timeout: float,
    ) -> GrpcConnection:
        """Connect; raises ConnectionRefusedError at the first failed attempt (as a
        refused TCP connect would) or TimeoutError."""
        channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        try:
            await asyncio.wait_for(_ready(channel, address), timeout)
        except BaseException:
            await channel.close()
            raise
        return cls(channel, requests, metadata)

    async def exchange(self, index: int, timeout: float) -> tuple[str | None, str]:
        started = time.perf_counter()
        request = self._requests[index % len(self._requests)]
        try:
            await self._call(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            return self._error(exc, time.perf_counter() - started, timeout)
        return None, ""

    def close(self) -> None:
        """Close the channel (in the background: a channel closes asynchronously)."""
        self.usable = False
        if not self._closed:
            self._closed = True
            task = asyncio.ensure_future(self._channel.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    def _error(self, exc: grpc.aio.AioRpcError, elapsed: float, timeout: float) -> tuple[str, str]:
        code = exc.code()
        detail = exc.details() or code.name
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and elapsed >= 0.99 * timeout:
            return TIMEOUT, f"no response within {timeout:g} s"
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            state = self._channel.get_state(try_to_connect=False)
            if state is not grpc.ChannelConnectivity.READY:  # the connection broke
                self.usable = False
                return DISCONNECT, detail
        return f"grpc_{code.name.lower()}", detail


async def _ready(channel: grpc.aio.Channel, address: str) -> None:
    state = channel.get_state(try_to_connect=True)
    while state is not grpc.ChannelConnectivity.READY:
        if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            raise ConnectionRefusedError(f"cannot connect to {address}")
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)

"""A request whose inputs are made by the worker that runs it.

A `/predict` request arrives as encoded bytes (a JPEG, a Python model's own body).
Decoding it on a thread pool and only then queueing the tensors costs two thread
hand-offs and a wake-up of the event loop per request, and the decoded tensor waits
in the queue holding memory. A `Deferred` request is queued as its `prepare` callable
instead: the worker that takes it calls `prepare()`, runs the batch, and calls
`finish(outputs)` on its share, all on one thread, which is how a hand-written loop
would do it. The scheduler still never sees bytes or images: `prepare` and `finish`
are opaque callables.

Batches form before `prepare` runs, so a deferred request to a tensor model declares
what `prepare` will return (`declared`: the name, dtype and shape of each input): its
rows and batch key come from that declaration, and inputs that turn out otherwise
are refused rather than stacked with a batch they do not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DeclaredTensor:
    """What one input will be once prepared: its dtype and full shape (batch first)."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Deferred:
    """One request's work, done by the worker that runs it (see the module docstring).

    `prepare()` returns the request's inputs; what it raises fails this request
    alone (an `InvalidInput` stays the client's error). `finish(outputs)`, when given,
    turns the request's share of the outputs into what its caller gets back.
    """

    prepare: Callable[[], Any]
    declared: Mapping[str, DeclaredTensor] | None = None
    finish: Callable[[Any], Any] | None = None

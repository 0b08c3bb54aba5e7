"""The KServe / Triton v2 inference protocol (Open Inference Protocol), over HTTP.

Requests are decoded to numpy (`request`, reading `header` first, then the
tensors from `binary` or `json_data`), responses encoded back (`response`),
and the metadata and readiness bodies built (`metadata`). Triton's binary
tensor data and classification extensions are supported; shared memory is
refused with a clear message.
"""

from batchserve.codecs.v2.binary import BYTES_LENGTH_PREFIX
from batchserve.codecs.v2.header import HEADER_LENGTH_HEADER, RequestedOutput
from batchserve.codecs.v2.metadata import (
    model_metadata,
    model_ready_body,
    server_metadata,
    tensor_metadata,
)
from batchserve.codecs.v2.request import InferRequest, decode_infer_request
from batchserve.codecs.v2.response import classify, encode_infer_response

__all__ = [
    "BYTES_LENGTH_PREFIX",
    "HEADER_LENGTH_HEADER",
    "InferRequest",
    "RequestedOutput",
    "classify",
    "decode_infer_request",
    "encode_infer_response",
    "model_metadata",
    "model_ready_body",
    "server_metadata",
    "tensor_metadata",
]

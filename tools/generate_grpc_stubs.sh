#!/bin/sh
# Regenerates the checked-in protobuf code of the gRPC codec from its .proto:
#   src/batchserve/codecs/grpc/inference_pb2.py and inference_pb2.pyi
#
# grpcio-tools is pinned to an old release on purpose: it bundles protoc 25.1, whose
# generated code carries no runtime version check and imports under every protobuf
# from 3.20.3 up (tested: 3.20.3, 4.25, 5.29, 6.31, 6.33, 7.36), so batchserve does
# not narrow the protobuf range that other packages in the same environment
# (TensorFlow, tritonclient) pin. Newer grpcio-tools write code that refuses any
# protobuf runtime older than their own protoc.
#
# It runs in a virtualenv of its own (.venv-protoc): grpcio-tools 1.62 needs
# protobuf < 5, which the project's environment does not have.
# No --grpc_python_out: see the comment at the top of inference.proto.
set -eu
cd "$(dirname "$0")/.."
VENV=.venv-protoc
if [ ! -x "$VENV/bin/python" ]; then
    python3.11 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'grpcio-tools==1.62.3'
fi
"$VENV/bin/python" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src \
    src/batchserve/codecs/grpc/inference.proto
echo "wrote src/batchserve/codecs/grpc/inference_pb2.py and inference_pb2.pyi"

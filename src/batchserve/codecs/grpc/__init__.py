"""The KServe / Triton v2 protocol over gRPC: our own `.proto` (`inference.proto`), its
generated messages (`inference_pb2`), and protobuf <-> numpy (`tensors`, `metadata`).

No gRPC server here and no model: the server hands over messages and gets numpy back.
"""

"""The v2 inference protocol over gRPC (`inference.GRPCInferenceService`), beside the
HTTP app and on its event loop: `server` (life cycle, bounds), `service` (the
methods), `streaming` (ModelStreamInfer), `calls` (deadlines, inference), `auth`,
and `errors` (domain errors -> status codes)."""

"""The ASGI app: v2 inference protocol, /predict, health, metrics, auth, limits, shutdown."""

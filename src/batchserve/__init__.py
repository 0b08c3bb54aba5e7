"""batchserve: serve trained deep-learning models over HTTP, safely and fast."""

__version__ = "0.1.0"

"""batchserve: serve trained deep-learning models over HTTP, safely and at the speed of the hardware."""

__version__ = "0.1.0"

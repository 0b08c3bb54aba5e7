"""Tests of batchserve.ray on a real local Ray cluster.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is imported: set here, before
any test module of this folder imports it, so that Ray's own "which address is mine"
answers 127.0.0.1 instead of the machine's outward address (conftest.py says why).
"""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

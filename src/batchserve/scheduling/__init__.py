"""Scheduling: the strategies that turn many concurrent requests into runtime calls.

Every scheduler takes numpy tensors and returns futures; none knows HTTP or images.
"""

from batchserve.scheduling.base import InferenceResult, Scheduler, SchedulerStats
from batchserve.scheduling.dynamic_batcher import DynamicBatcher
from batchserve.scheduling.pool import InstancePool
from batchserve.scheduling.shared import SharedInstance

__all__ = [
    "DynamicBatcher",
    "InferenceResult",
    "InstancePool",
    "Scheduler",
    "SchedulerStats",
    "SharedInstance",
]

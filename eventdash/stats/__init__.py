from .partition_state import PartitionStats
from .view import build_view

__all__ = ["PartitionStats", "build_view"]

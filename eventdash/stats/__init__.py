"""Pure statistics: per-partition state, HyperLogLog, the merged view."""

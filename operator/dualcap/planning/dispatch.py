"""Kept for the sandbox's scheduler, which still imports ``tolerates`` from here; the
planner's GPU packing is ``planning.gpus``. Goes when the sandbox has its own check."""

from dualcap.planning.gpus import tolerates

__all__ = ["tolerates"]

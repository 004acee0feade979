"""dualcap: keep mining-turned-AI-compute sites inside their power envelope."""

__version__ = "0.1.0"

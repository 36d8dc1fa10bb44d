"""SSR core library: structured scene reasoning (no ROS imports)."""

__version__ = "0.1.0"

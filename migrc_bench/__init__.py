"""migrc-bench: replay memory traces through a model of TLBs, tiering and migration engines."""

__version__ = "0.1.0"

"""paypos — an open-source point-of-sale payment platform."""

__version__ = "0.1.0"

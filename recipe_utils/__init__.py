"""Support package of the physical-plausibility course: every notebook cell that does work calls it."""

__version__ = "0.1.0"

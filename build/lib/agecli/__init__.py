"""agecli: facial age estimation from the command line."""
__version__ = "0.1.0"

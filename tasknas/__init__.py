"""tasknas: task-specific one-shot neural architecture search."""
__version__ = "0.1.0"

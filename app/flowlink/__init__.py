"""Flowlink: a desktop workspace manager with linked workspaces."""

__version__ = "0.1.0"

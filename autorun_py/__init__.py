"""autorun: run a staged master plan as parallel Claude Code sessions."""

__version__ = "0.1.0"

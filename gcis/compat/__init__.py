"""Compatibility code for third-party packages that do not yet support this project's pinned versions."""

"""Errors that the application reports to the user with a dedicated exit status."""

from __future__ import annotations


class InputError(ValueError):
    """The input folder contains no DICOM CT series that the application can segment.

    The message names the folder, series or file and the reason, and tells the user what to change.
    """


class TaskSelectionError(ValueError):
    """The requested tasks are unknown to the catalogue or were not trained into the weights."""


class WeightsNotFoundError(FileNotFoundError):
    """No gCIS weights file was found at the model path."""


class ConfigurationError(ValueError):
    """A setting on the command line, in the app config or in the selection rules file is invalid."""

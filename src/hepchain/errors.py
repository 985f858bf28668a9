"""Exceptions of hepchain.

Every error a user can trigger with a bad input is a :class:`HepchainError`
subclass whose message names the offending file, branch or config key and
what is wrong.  The command line prints it as a single line and exits with
status 2, leaving earlier outputs untouched.
"""

from __future__ import annotations


class HepchainError(Exception):
    """Base class for errors caused by user input (files, config, selections)."""


class ConfigError(HepchainError, ValueError):
    """A config key is unknown, missing or has an invalid value."""


class InputFileError(HepchainError, OSError):
    """An input file is missing, unreadable, or not of the expected format."""


class MissingBranchError(InputFileError, KeyError):
    """A file lacks a branch that a stage needs."""

    def __init__(self, path: str, branch: str, stage: str, hint: str = "") -> None:
        self.path = path
        self.branch = branch
        self.stage = stage
        message = f"{path}: branch '{branch}' needed by {stage} is missing"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class EmptySelectionError(HepchainError, RuntimeError):
    """A selection kept no events where the next stage needs some."""

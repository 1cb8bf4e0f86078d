"""Errors a user can meet. Each message is a sentence that says what to do next."""

from __future__ import annotations


class FlowlinkError(Exception):
    """Base of every error whose message is meant for the user as it is."""


class ValidationError(FlowlinkError):
    """A value the user gave is not acceptable; ``field`` names the form field / option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ValidationErrors(FlowlinkError):
    """Several fields failed at once; ``errors`` maps field name to sentence."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(self.errors.values()))


class PermissionDeniedError(FlowlinkError):
    pass


class NotFoundError(FlowlinkError):
    pass


class WorkspaceError(FlowlinkError):
    """The workspace on disk cannot be used (missing, corrupt, newer schema, locked)."""


class SecretStoreError(FlowlinkError):
    """Any failure of the secret store, with the store's name and what the user can do."""

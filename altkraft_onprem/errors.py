"""Errors that services raise for people to read; UI and API turn them into messages."""
from __future__ import annotations


class ServiceError(Exception):
    """A request a service refuses; `field` names the offending input when there is one."""

    status = 422

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Forbidden(ServiceError):
    status = 403


class TooManyRequests(ServiceError):
    status = 429

"""Errors of the local-services launchers.

    ServiceError                 root: a local service could not be provided
    ├── ServiceNotInstalled      a binary (redis-server, initdb, java, mvn) is missing
    ├── ServiceStartFailed       the process exited, or never became ready, during start
    └── ServiceNotRunning        an operation needs a started service

None is retriable: each means the machine or the call is wrong, and retrying changes nothing.
"""

from __future__ import annotations

__all__ = ["ServiceError", "ServiceNotInstalled", "ServiceNotRunning", "ServiceStartFailed"]


class ServiceError(Exception):
    """Root of the launchers' errors."""

    retriable = False


class ServiceNotInstalled(ServiceError):
    """A program the service needs is not on this machine; the message says how to get it."""


class ServiceStartFailed(ServiceError):
    """The service did not come up; the message carries the tail of its log."""


class ServiceNotRunning(ServiceError):
    """The service has not been started, or was stopped."""

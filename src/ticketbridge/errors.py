"""The exception tree of ticketbridge.

Callers catch by what they want to do next::

    TicketBridgeError
    ├── ConfigError                 the configuration is wrong; never start
    ├── StoreError                  the state store failed
    ├── WebhookError                a webhook request is refused
    │   ├── WebhookAuthError        missing or wrong secret/signature   -> 401
    │   ├── WebhookPayloadError     malformed body                      -> 400
    │   └── WebhookUnavailableError cannot verify now, retry later      -> 503
    └── AdapterError                a vendor or PSA API call failed
        ├── TransientError          try again later (5xx, timeout, transport, garbage body)
        │   └── RateLimitedError    429; carries ``retry_after`` seconds
        └── PermanentError          retrying will not help (4xx)
            ├── AuthFailedError     401/403
            ├── NotFoundError       404
            └── CapabilityError     the product cannot do this (undeclared capability)

``TransientError.uncertain`` tells whether the request may have reached the
target and taken effect (a read timeout, a 5xx on a write): before sending a
write again after an uncertain failure, look it up on the target first.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "AuthFailedError",
    "CapabilityError",
    "ConfigError",
    "NotFoundError",
    "PermanentError",
    "RateLimitedError",
    "StoreError",
    "TicketBridgeError",
    "TransientError",
    "WebhookAuthError",
    "WebhookCapabilityError",
    "WebhookError",
    "WebhookPayloadError",
    "WebhookUnavailableError",
]


class TicketBridgeError(Exception):
    """Base of every error ticketbridge raises on purpose."""


class ConfigError(TicketBridgeError):
    """The configuration is invalid.  ``problems`` lists (yaml_path, message, hint)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [
            f"{path}: {msg}" + (f" (hint: {hint})" if hint else "") for path, msg, hint in problems
        ]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class StoreError(TicketBridgeError):
    """The state store could not be read or written."""


class WebhookError(TicketBridgeError):
    """A webhook request is refused."""

    status_code = 400


class WebhookAuthError(WebhookError):
    """The webhook's secret or signature is missing or wrong."""

    status_code = 401


class WebhookPayloadError(WebhookError):
    """The webhook's body is malformed."""

    status_code = 400


class WebhookUnavailableError(WebhookError):
    """The webhook cannot be verified now (e.g. a key-fetch budget is spent); retry later."""

    status_code = 503


class AdapterError(TicketBridgeError):
    """A call to a PSA or vendor API failed."""

    def __init__(self, message: str, *, system: str = "", status: int | None = None) -> None:
        self.system = system
        self.status = status
        super().__init__(message)


class TransientError(AdapterError):
    """A failure worth retrying later."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        status: int | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message, system=system, status=status)
        self.uncertain = uncertain


class RateLimitedError(TransientError):
    """The API answered 429; ``retry_after`` is how long it asked us to wait, in seconds."""

    def __init__(self, message: str, *, system: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, system=system, status=429, uncertain=False)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    """A failure that retrying will not fix."""


class AuthFailedError(PermanentError):
    """The API refused our credentials."""


class NotFoundError(PermanentError):
    """The record does not exist at the target."""


class CapabilityError(PermanentError):
    """The adapter was asked for something its product does not declare it can do.

    ``product`` is the adapter kind, ``capability`` the capability's value.
    """

    def __init__(
        self, product: str, capability: str, *, system: str = "", detail: str = ""
    ) -> None:
        self.product = product
        self.capability = capability
        where = f" (system {system!r})" if system else ""
        extra = f": {detail}" if detail else ""
        super().__init__(
            f"{product}{where} does not have the capability {capability!r}{extra}",
            system=system,
        )


class WebhookCapabilityError(CapabilityError, WebhookAuthError):
    """A webhook arrived for a product that does not declare webhooks: refused with 401."""

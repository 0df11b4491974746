"""The ``webhook`` destination: events as JSON to an HTTP endpoint, optionally signed and batched."""

from eventyard.destinations.webhook.destination import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDestination,
    WebhookSettings,
    sign,
    verify_signature,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookDestination",
    "WebhookSettings",
    "sign",
    "verify_signature",
]

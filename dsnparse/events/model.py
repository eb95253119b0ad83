"""The record of one provider event: a :class:`~dsnparse.model.Report` with the event's
identity and the provider's own classification.

An :class:`EventReport` is a ``Report`` (kind, verdicts… as for mail, so the ledger
records it the same way: :meth:`dsnparse.ledger.Ledger.record_report`) with four more
fields, added to every output record after the mail fields:

``provider``        ``ses``, ``sendgrid``, ``mailgun``, ``postmark`` or ``sparkpost``.
``event_id``        the provider's id of the event (SNS ``MessageId``, SendGrid
                    ``sg_event_id``, Mailgun ``id``, Postmark ``ID``, SparkPost
                    ``event_id``…; see the provider's YAML mapping), or ``sha256:<hex>`` of
                    the event's canonical JSON when the event carries none (a Postmark
                    delivery), so that a redelivered event always has the same id.
``event_type``      the provider's event type as written (``Bounce``, ``dropped``…).
``provider_class``  the provider's classification of the event (SES
                    ``bounceType/bounceSubType``, SendGrid ``type/bounce_classification``,
                    Mailgun ``severity/reason``, Postmark ``Type``, SparkPost
                    ``bounce_class``), or ``None``.

A record's ``source`` is ``<provider>:<event_id>`` unless the caller gives another;
``date`` is the event's time (ISO 8601, UTC) and ``original_message_id`` the provider's id
of the message the event is about.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..model import RECORD_FIELDS, Report

EVENT_FIELDS = ("provider", "event_id", "event_type", "provider_class")
"""Keys an event's records add after :data:`dsnparse.model.RECORD_FIELDS`."""
EVENT_RECORD_FIELDS = RECORD_FIELDS + EVENT_FIELDS


@dataclass(frozen=True)
class EventReport(Report):
    """A :class:`~dsnparse.model.Report` made from one provider event (see the module
    docstring for the added fields, all ``str`` or ``None``)."""

    provider: Optional[str] = None
    event_id: Optional[str] = None
    event_type: Optional[str] = None
    provider_class: Optional[str] = None

    @property
    def message_key(self) -> str:
        """The ledger's dedup key of the event (``"event:<provider>:<event_id>"``): a
        redelivered event gives the same key, so it is not counted twice."""
        return f"event:{self.provider}:{self.event_id}"

    def records(self, source: Optional[str] = None) -> list[dict[str, Any]]:
        """Output records as :meth:`Report.records`, ``source`` defaulting to
        ``<provider>:<event_id>``, with the keys of :data:`EVENT_FIELDS` added."""
        src = source if source is not None else f"{self.provider}:{self.event_id}"
        extra = {"provider": self.provider, "event_id": self.event_id,
                 "event_type": self.event_type, "provider_class": self.provider_class}
        return [{**r, **extra} for r in super().records(src)]

"""The event log: durable topics with leases. Only runtime/wiring picks a concrete backend."""

from eventyard.log.base import EventLog, LeasedRecord, LogRecord, TopicStats

__all__ = ["EventLog", "LeasedRecord", "LogRecord", "TopicStats"]

"""Collect: the Segment/RudderStack-compatible tracking API (append, then acknowledge)."""

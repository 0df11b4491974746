"""The wire contract of the Segment/RudderStack tracking API: pure functions, no I/O."""

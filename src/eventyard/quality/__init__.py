"""Quality: metrics, the live view of traffic, and (later) delivery overview and catalog."""

"""Route: fan-out to destinations, delivery with retries, dead letters, replay."""

"""Destinations: one folder per destination; ``base`` holds the contract, ``registry`` finds them."""

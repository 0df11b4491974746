"""Unify: the stages every stored event passes through before it is routed."""

"""eventyard: a self-hostable Customer Data Platform (Collect, Unify, Route)."""

__version__ = "0.1.0"

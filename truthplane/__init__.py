"""truthplane: accept or reject code changes on deterministic evidence."""

__version__ = "0.1.0"

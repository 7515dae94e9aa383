"""Helpers every stage may use: atomic writes, hashing, liveness of processes, the web guard, quiet
third-party logs, lazy package faces."""

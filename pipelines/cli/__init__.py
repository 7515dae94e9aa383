"""The ``visuels`` command line: ``main`` runs a command; ``visuels.flows.cli`` is the console script
that hands it the Prefect flows."""

from visuels.cli.main import Flows, main, offline_defaults

__all__ = ["Flows", "main", "offline_defaults"]

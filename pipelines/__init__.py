"""visuels library: every stage of the pipeline, with no Prefect import anywhere.

Flows (``flows/``) and the CLI (``pipelines.cli``) compose these modules; nothing is written
twice for the two entry points.
"""

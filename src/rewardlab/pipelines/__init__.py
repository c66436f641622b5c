"""Pipelines: jobs that orchestrate the others (sample -> search -> score -> curves).

They sit above search, evaluate, label and train, and below the CLI and reports.
"""

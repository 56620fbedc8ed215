"""Integrations with ML tools; each imports its tool lazily, so the tools stay optional."""

"""Outer (meta) algorithms, one per file."""

"""Benchmarks of the services on a real PostgreSQL; each prints one JSON line of results."""

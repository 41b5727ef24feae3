"""Benchmarks of Hub beside its peers (Node's Socket.IO, pgbench): see docs/benchmarks.md."""

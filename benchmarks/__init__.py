"""Benchmarks of cortex_fa: throughput against PyTorch, memory, sweep scaling (see docs/performance.md)."""

"""Benchmarks that report ratios against raw nats-py, raw sqlite and Celery."""

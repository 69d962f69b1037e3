"""Pure domain of Baker Street jobs: events, wire messages, job specs, lifecycles.

Nothing here performs I/O or imports asyncio; everything is plain data and pure functions.
"""

"""`ops bench`: a bounded load generator for an OpenAI-compatible endpoint.

`stats` holds the pure statistics (percentiles, TPOT, throughput) defined as vLLM's benchmark client defines
them, `client` sends the streaming requests, `report` renders tables, JSON and the latency-vs-concurrency plot.
"""

"""undersign's benchmarks and load test: real processes on loopback, figures as ratios.

``python -m bench [ingest calls green scale memory] [--quick]`` runs the benchmarks;
``python -m bench.load`` (``make load``) runs the load test. Every run is bounded in requests
and in time, talks to loopback only, and cleans up the processes it started.
"""

"""The load generator behind `batchserve bench`.

Closed-loop concurrency sweeps and fixed-rate (open-loop) runs against any HTTP
endpoint, with latency percentiles, errors by kind, the server's memory and the
generator's own CPU cost. It speaks HTTP only and never imports the server, so
it measures batchserve exactly as it measures any other server.
"""

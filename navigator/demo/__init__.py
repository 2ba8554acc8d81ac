"""``navigator demo``: a simulated fleet, a manager and edges in one command, watched live.

The pieces (processes, configs, status polling, dashboard) are shared with
``navigator local``, which points the same set-up at real clusters.
"""

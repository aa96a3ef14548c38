"""How the studio's processes are run: the `make run` launcher that supervises them, the RQ worker's use of RQ's
internals, and the memory tuning they start with.

Process tooling only: the Flask app (studio/) never imports it. rq_worker.py, the worker's entry point, sits beside
this package and uses it.
"""

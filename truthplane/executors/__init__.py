"""The executors: where jobs run (local with bubblewrap, docker, AWS Lambda, ssh nodes) behind the interface in
interface.py; a job and its result are jobs.py; loader.py makes the configured one.

Uses the base only.
"""

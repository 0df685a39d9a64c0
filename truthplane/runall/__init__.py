"""`run-all`: a task list run across workers and ssh nodes, each task in its own tree, judged by the gate;
approved changes committed in order (landing.py), resumable, with one execution record for the run.
"""

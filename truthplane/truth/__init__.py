"""What is true of a tree and of a change: what a scan reads (sources), the scanner and its result cache,
fingerprints and how findings are paired across a change, the gate's verdict, SARIF out, baselines, the tools
started ahead of a gate, and the gatekeeper's operations for coding agents.

Uses the verifiers, the executors (only to run tests and builds, through their interface), git (to read) and
the base; never the change plane, the LLMs or run-all.
"""

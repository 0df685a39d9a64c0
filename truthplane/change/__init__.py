"""The evidence-first patch loop: candidates (patch files, the analysers' autofixes, LLMs), each judged in a
sandbox by the gate, checked for tampering and reward hacks; the winner applied or committed (apply.py) and
its execution record written (record.py).
"""

"""Git: running it (and the calls a gate makes, started ahead), reading a repository, deepening a shallow clone,
and the only code that writes into a user's repository (checkout.py through tree_writer.py: never through a
link, into .git or outside the working tree).

Uses the base only.
"""

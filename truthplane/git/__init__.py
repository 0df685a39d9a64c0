"""Git: running it (and the calls a gate makes, started ahead), reading a repository, deepening a shallow clone,
and the only code that writes into a user's repository (checkout.py through tree_writer.py: never through a
link, into .git or outside the working tree).

Uses the base only.
"""

# how truthplane runs git: never a prompt, never an optional lock (a gate's reads leave the index alone), C messages
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
# the working tree against HEAD: a gate's stat pass (truthplane.git.run.changes_args, with HEAD's commit named)
STAT_PASS = ("diff-index", "--raw", "-z", "--no-renames", "--no-abbrev", "HEAD", "--")

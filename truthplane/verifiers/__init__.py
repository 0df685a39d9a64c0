"""The verifiers: one module per analyser behind the interface in interface.py; running a tool (tool.py),
its version (versions.py), the template of a tool run on files (file_tool.py), SARIF in (sarif_input.py), and
making the configured ones (loader.py). Built-ins are listed in truthplane.registry like any plugin.
"""

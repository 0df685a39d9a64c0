from truthplane.cli.main import entry

entry()

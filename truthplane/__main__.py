from truthplane.cli.start import entry

if __name__ == "__main__":  # a Dask worker process started by spawn imports this module again: it must not run
    entry()

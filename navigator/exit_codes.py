"""Process exit codes shared by every ``navigator`` command."""

EXIT_OK = 0
#: The command failed (a clear message was printed).
EXIT_FAILURE = 1
#: Bad command-line arguments (argparse's own code).
EXIT_USAGE = 2
#: Some of the work succeeded and some failed (e.g. ``edge --once`` with a kind that could not be collected).
EXIT_PARTIAL = 3
#: The manager refused the edge for good (``manager.max_rejections`` permanent rejections in a row):
#: restarting will not help until its configuration (token, cluster id) or the manager changes.
EXIT_REJECTED = 4

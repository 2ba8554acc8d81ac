"""The ``navigator`` command line.

gRPC's C core logs to stderr on its own (e.g. a port already in use), in words the commands
already say better, once; it stays quiet unless ``GRPC_VERBOSITY`` asks otherwise. Set here,
before any command imports grpc, which reads it once.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

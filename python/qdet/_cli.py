"""The ``qdet`` console script: the bundled binary itself, so every subcommand, signal and
exit status is the command's own."""
import os
import sys

from ._binary import binary


def main() -> None:
    path = binary()
    os.execv(path, [path, *sys.argv[1:]])

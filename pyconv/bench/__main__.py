import os
import sys

from .cli import main

if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BrokenPipeError:          # e.g. `--list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)

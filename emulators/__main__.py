"""``python -m emulators``: run provider emulators until interrupted."""

import sys

from emulators.cli import main

if __name__ == "__main__":
    sys.exit(main())

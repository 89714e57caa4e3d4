"""``python -m emulators.kafka``: run an embedded Kafka broker until interrupted."""

import sys

from emulators.kafka.cli import main

sys.exit(main())

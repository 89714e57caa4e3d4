"""`python -m consumers consume|topics ensure|send`."""

from consumers.cli import main

raise SystemExit(main())

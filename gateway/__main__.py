"""`python -m gateway ...`: the `gateway` command where its script is not on PATH."""

from gateway.cli import main

raise SystemExit(main())

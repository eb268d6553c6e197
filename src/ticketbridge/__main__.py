from __future__ import annotations

from ticketbridge.cli import main

main()

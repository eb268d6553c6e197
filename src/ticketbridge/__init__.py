"""ticketbridge: bridges MSP PSA tickets to vendor tickets."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

"""The pure supplier-SLA core: no I/O, no database, no HTTP.

* :mod:`ticketbridge.sla.calendar` -- business calendars (time zones, working
  hours, public holidays, dated exceptions) and business-time arithmetic.
* :mod:`ticketbridge.sla.models` -- pydantic models of the ``sla`` config
  section and :func:`~ticketbridge.sla.models.validate_sla_config`.
* :mod:`ticketbridge.sla.clock` -- acknowledgment, update-cadence and
  resolution clocks from event history: full recompute and checkpoints.
* :mod:`ticketbridge.sla.ball` -- ball-in-court from status observations.
* :mod:`ticketbridge.sla.kpi` -- supplier scorecard aggregation.
"""

from __future__ import annotations

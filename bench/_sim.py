"""One simulator in a process of its own, so the load generator's GIL does not slow it.

``python -m bench._sim connectwise|servicenow`` prints the simulator's URL on one line,
then serves until its standard input closes.  The ServiceNow one also answers
``GET /_sandbox/bench/journal?after=N``: the journal entries stored after the first N,
``{"next": N', "entries": [[text, stored_at], ...]}`` (``stored_at``: wall-clock seconds,
``time.time()``); the ConnectWise one answers ``GET /_sandbox/bench/notes?after=N`` alike
for the notes added.
"""

from __future__ import annotations

import sys
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ticketbridge.adapters.connectwise import simulator as connectwise
from ticketbridge.adapters.servicenow import simulator as servicenow
from ticketbridge.sandbox.server import SandboxServer


def _journal_route(app: FastAPI) -> None:
    state: Any = app.state.sandbox

    @app.get("/_sandbox/bench/journal")
    async def journal(after: int = 0) -> JSONResponse:
        with state.lock:
            stamps = state.journal_stored_at[after:]
            rows = state.tables["sys_journal_field"]
            out = [[rows[sys_id]["value"], at] for sys_id, at in stamps if sys_id in rows]
        return JSONResponse({"next": after + len(stamps), "entries": out})


def _notes_route(app: FastAPI) -> None:
    state: Any = app.state.sandbox

    @app.get("/_sandbox/bench/notes")
    async def notes(after: int = 0) -> JSONResponse:
        with state.lock:
            stamps = state.notes_stored_at[after:]
            out = [[state.notes[i]["text"], at] for i, at in stamps if i in state.notes]
        return JSONResponse({"next": after + len(stamps), "entries": out})


def main() -> None:
    kind = sys.argv[1]
    if kind == "connectwise":
        app = connectwise.create_app()
        _notes_route(app)
    elif kind == "servicenow":
        app = servicenow.create_app()
        _journal_route(app)
    else:
        raise SystemExit(f"unknown simulator {kind!r}")
    server = SandboxServer(app).start()
    print(server.url, flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()

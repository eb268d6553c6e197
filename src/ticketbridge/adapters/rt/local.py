"""A throwaway Request Tracker 5 on loopback, from Debian's packages (``scripts/rt-up``).

:func:`start_local_rt` gives one instance its own state directory: a site config directory
(``RT_SITE_CONFIG_DIR``, Debian's snippets linked plus ours), a fresh SQLite database
(``rt-setup-database-5``), a queue, the integration user with the rights the README lists
and an auth token, a second user playing the vendor's agent, and ``rt-server`` (Starlet)
on ``127.0.0.1:<port>``.  :meth:`LocalRt.stop` ends it by its PID.  Outgoing mail goes to
``<state>/outgoing.mbox``, never to a mail server.  Tests, the benchmark and demos share it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "INTEGRATION_RIGHTS",
    "LocalRt",
    "RtUnavailable",
    "free_port",
    "missing_software",
    "start_local_rt",
]

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
SETUP_DATABASE = "rt-setup-database-5"
DEBIAN_SNIPPETS = Path("/etc/request-tracker5/RT_SiteConfig.d")
WEB_PATH = "/rt"
QUEUE = "Vendor Support"
INTEGRATION_USER = "ticketbridge"
AGENT_USER = "vendor.agent"
REQUESTOR = "servicedesk@msp.example"
#: The queue rights the integration user needs (see the README).
INTEGRATION_RIGHTS = (
    "SeeQueue",
    "ShowTicket",
    "ShowTicketComments",
    "CreateTicket",
    "ReplyToTicket",
    "CommentOnTicket",
    "ModifyTicket",
    "ShowOutgoingEmail",
)
INSTALL_HINT = (
    "run scripts/rt-up (as root: apt-get install request-tracker5 rt5-standalone rt5-db-sqlite w3m)"
)


class RtUnavailable(RuntimeError):
    """Request Tracker cannot be started here; the message says what is missing."""


@dataclass
class LocalRt:
    """A running instance: where it answers and the credentials made for it."""

    base_url: str  # RT's web root, e.g. http://127.0.0.1:PORT/rt
    token: str  # the integration user's token
    agent_token: str  # the vendor agent's token
    state: Path
    pid: int
    user: str = INTEGRATION_USER
    agent: str = AGENT_USER
    queue: str = QUEUE
    requestor: str = REQUESTOR
    #: The server's process when started here (reaped on stop).
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def api(self) -> str:
        return f"{self.base_url}/REST/2.0"

    def stop(self, timeout: float = 10.0) -> None:
        """TERM the server's master (it stops its workers); KILL what is left."""
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self._reap()
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._reap(block=False)
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def _reap(self, *, block: bool = True) -> None:
        """Collect the exit status of the server started here (no zombie left behind)."""
        if self.process is None:
            return
        if block:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                return
        elif self.process.poll() is None:
            return
        self.process = None


def missing_software() -> str | None:
    """What is missing to run RT here, or ``None``."""
    if not RT_SERVER.exists() or shutil.which(SETUP_DATABASE) is None:
        return f"Request Tracker 5 is not installed: {INSTALL_HINT}"
    if shutil.which("perl") is None:
        return "perl is not installed"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SITE_CONFIG = """\
Set($rtname, 'rt.ticketbridge.test');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '{web_path}');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{state}/rtdb');
Set($BcryptCost, 4);
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($Timezone, 'UTC');
Set($MailCommand, sub {{
    my $entity = shift;
    open(my $fh, '>>', '{state}/outgoing.mbox') or return 0;
    print $fh "From rt\\@localhost\\n", $entity->stringify, "\\n";
    close $fh;
    return 1;
}});
1;
"""

_BOOTSTRAP = r"""
use strict; use warnings;
use RT; RT::LoadConfig(); RT::Init();
my $sys = RT->SystemUser;
my $q = RT::Queue->new($sys); $q->Load($ENV{TB_QUEUE});
unless ($q->id) {
    my ($ok, $msg) = $q->Create(Name => $ENV{TB_QUEUE}, Description => 'vendor tickets');
    die "queue: $msg\n" unless $ok;
}
my @users = (
    [$ENV{TB_USER}, 'ticketbridge@msp.example', [split / /, $ENV{TB_RIGHTS}]],
    [$ENV{TB_AGENT}, 'agent@vendor.example', [split(/ /, $ENV{TB_RIGHTS}), 'OwnTicket']],
);
for my $spec (@users) {
    my ($name, $email, $rights) = @$spec;
    my $u = RT::User->new($sys); $u->Load($name);
    unless ($u->id) {
        my ($ok, $msg) = $u->Create(Name => $name, EmailAddress => $email, Privileged => 1);
        die "user $name: $msg\n" unless $ok;
    }
    for my $right (@$rights) {
        my ($ok, $msg) = $u->PrincipalObj->GrantRight(Right => $right, Object => $q);
        die "right $right: $msg\n" unless $ok or $msg =~ /already/i;
    }
    my ($id, $msg, $auth) = RT::AuthToken->new($sys)
        ->Create(Owner => $u->id, Description => 'ticketbridge tests');
    die "token $name: $msg\n" unless $id;
    print "$name $auth\n";
}
"""


def start_local_rt(state: Path, *, port: int | None = None, timeout: float = 60.0) -> LocalRt:
    """Set up and start a fresh instance under ``state``; raise :class:`RtUnavailable`."""
    missing = missing_software()
    if missing:
        raise RtUnavailable(missing)
    port = port or free_port()
    state.mkdir(parents=True, exist_ok=True)
    site = state / "siteconfig"
    site.mkdir(exist_ok=True)
    for snippet in sorted(DEBIAN_SNIPPETS.glob("*.pm")) if DEBIAN_SNIPPETS.is_dir() else []:
        link = site / snippet.name
        if not link.exists():
            link.symlink_to(snippet)
    (site / "99-ticketbridge.pm").write_text(
        _SITE_CONFIG.format(port=port, web_path=WEB_PATH, state=state), encoding="utf-8"
    )
    env = {**os.environ, "RT_SITE_CONFIG_DIR": str(site)}
    log = state / "rt-server.log"

    def run(args: list[str], what: str, extra: dict[str, str] | None = None) -> str:
        done = subprocess.run(  # noqa: S603 - fixed programs, our arguments
            args,
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise RtUnavailable(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    if not (state / "rtdb").exists():
        run([SETUP_DATABASE, "--action", "init", "--skip-create"], "rt-setup-database")
    out = run(
        ["perl", f"-I{RT_LIB}", "-e", _BOOTSTRAP],
        "bootstrap (queue, users, tokens)",
        {
            "TB_QUEUE": QUEUE,
            "TB_USER": INTEGRATION_USER,
            "TB_AGENT": AGENT_USER,
            "TB_RIGHTS": " ".join(INTEGRATION_RIGHTS),
        },
    )
    tokens = dict(line.split(" ", 1) for line in out.strip().splitlines() if " " in line)
    with log.open("ab") as sink:
        proc = subprocess.Popen(  # noqa: S603 - a fixed program
            [
                str(RT_SERVER),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webpath",
                WEB_PATH,
                "--max-workers",
                "2",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    (state / "rt.pid").write_text(str(proc.pid), encoding="utf-8")
    instance = LocalRt(
        base_url=f"http://127.0.0.1:{port}{WEB_PATH}",
        token=tokens[INTEGRATION_USER].strip(),
        agent_token=tokens[AGENT_USER].strip(),
        state=state,
        pid=proc.pid,
        process=proc,
    )
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"token {instance.token}", "User-Agent": "ticketbridge"}
    while True:
        if proc.poll() is not None:
            raise RtUnavailable(f"rt-server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"{instance.api}/rt", headers=headers, timeout=2).status_code == 200:
                return instance
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            instance.stop()
            raise RtUnavailable(f"rt-server did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.1)

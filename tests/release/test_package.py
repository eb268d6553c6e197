"""The release artefacts: the sdist and the wheel built from it, and the wheel installed."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import ticketbridge

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "ticketbridge"

pytestmark = pytest.mark.timeout(180)


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        reason = f"{module} is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(sdist, wheel)``: `python -m build` makes the sdist, then the wheel from the sdist
    (so the sdist is proven to hold what a build needs); hatchling from this environment."""
    _need("build")
    _need("hatchling")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def _package_data() -> list[str]:
    """Every file of the package that is not Python source: what must ship as data."""
    return sorted(
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


class TestWheel:
    def test_holds_the_package_data(self, dist: tuple[Path, Path]):
        """Templates, migrations, product READMEs and examples, demo files, py.typed."""
        names = set(zipfile.ZipFile(dist[1]).namelist())
        data = _package_data()
        assert "ticketbridge/store/migrations/script.py.mako" in data
        assert "ticketbridge/demo.yaml" in data
        assert [] == [name for name in data if name not in names]
        migrations = sorted((PACKAGE / "store" / "migrations" / "versions").glob("*.py"))
        assert migrations
        for migration in migrations:
            assert migration.relative_to(PACKAGE.parent).as_posix() in names
        for readme in PACKAGE.glob("adapters/*/README.md"):
            assert readme.relative_to(PACKAGE.parent).as_posix() in names

    def test_carries_the_licence_and_metadata(self, dist: tuple[Path, Path]):
        """LICENSE is the repository's; the metadata says Apache-2.0 and registers every
        product of pyproject.toml as an adapter entry point."""
        wheel = zipfile.ZipFile(dist[1])
        info = f"ticketbridge-{ticketbridge.__version__}.dist-info"
        licence = wheel.read(f"{info}/licenses/LICENSE").decode("utf-8")
        assert (ROOT / "LICENSE").read_text(encoding="utf-8") == licence
        assert "Apache License" in licence
        assert "Version 2.0, January 2004" in licence
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode("utf-8"))
        assert "Apache-2.0" == metadata["License-Expression"]
        assert "LICENSE" == metadata["License-File"]
        entry_points = wheel.read(f"{info}/entry_points.txt").decode("utf-8")
        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        for kind, target in project["project"]["entry-points"]["ticketbridge.adapters"].items():
            assert f"{kind} = {target}" in entry_points


class TestSdist:
    def test_holds_sources_tests_docs_and_licence(self, dist: tuple[Path, Path]):
        """The sdist has the tests, the docs site, the configuration examples and LICENSE."""
        with tarfile.open(dist[0]) as sdist:
            names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        for required in (
            "LICENSE",
            "README.md",
            "pyproject.toml",
            "mkdocs.yml",
            "docs/index.md",
            "docs/hooks/generate.py",
            "tests/conftest.py",
            "tests/release/test_package.py",
            "config/ticketbridge.example.yaml",
            "src/ticketbridge/__init__.py",
        ):
            assert required in names, required
        tests = [name for name in names if name.startswith("tests/") and name.endswith(".py")]
        in_tree = list((ROOT / "tests").rglob("test_*.py"))
        assert len(in_tree) <= len(tests)
        assert not [name for name in names if "__pycache__" in name]


def _dependencies_view(target: Path) -> Path:
    """This environment's installed packages without ticketbridge itself, as symlinks:
    the fresh venv imports its dependencies from here and ticketbridge only from the wheel."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("ticketbridge", "_ticketbridge", "__editable__")):
            continue
        if entry.suffix == ".pth":
            continue
        (target / entry.name).symlink_to(entry)
    return target


def test_the_wheel_installs_and_runs_in_a_fresh_venv(
    dist: tuple[Path, Path], tmp_path: Path
) -> None:
    """`pip install` of the wheel (offline, no dependency downloads) into a new venv gives a
    `ticketbridge` command that runs from the installed files."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    deps = _dependencies_view(tmp_path / "deps")
    (Path(site) / "deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(dist[1]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert 0 == install.returncode, install.stdout + install.stderr

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "ticketbridge"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )

    version = run("version")
    assert 0 == version.returncode, version.stderr
    assert ticketbridge.__version__ == version.stdout.strip()
    where = subprocess.run(
        [str(python), "-c", "import ticketbridge; print(ticketbridge.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert where.startswith(site), where
    example = run("config", "example", "--psa", "connectwise", "--vendor", "servicenow")
    assert 0 == example.returncode, example.stderr
    assert "kind: servicenow" in example.stdout  # the product folder's example.yaml shipped
    option = run("--version")
    if "No such option" not in option.stderr:  # the option arrives with the CLI's own work
        assert 0 == option.returncode, option.stderr
        assert ticketbridge.__version__ in option.stdout

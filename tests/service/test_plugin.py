"""twistd plugins: found from a checkout and from an installed wheel; tap options."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

from smsgw.service import tap

ROOT = Path(__file__).resolve().parents[2]


def test_plugins_found_from_checkout() -> None:
    """With twistd_plugins on sys.path, twistd sees smsgw and smsgw-smsc."""
    names = {p.tapname for p in getPlugins(IServiceMaker)}
    assert {"smsgw", "smsgw-smsc"} <= names


def test_no_init_below_twistd_plugins() -> None:
    """twistd_plugins/twisted/plugins must not be a package of its own."""
    assert list((ROOT / "twistd_plugins").rglob("__init__.py")) == []


def test_every_subpackage_is_packaged() -> None:
    """Each smsgw subpackage is listed in pyproject, so the wheel carries it."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "smsgw").rglob("__init__.py")
    }
    assert found <= listed


@pytest.mark.slow
def test_plugin_found_from_installed_wheel(tmp_path: Path) -> None:
    """A wheel built from the checkout installs the plugin where twistd looks."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("smsgw-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "twisted/plugins/smsgw_plugin.py" in names
    assert "smsgw/profiles/generic.yaml" in names
    assert not any(n.startswith("twisted/plugins/__init__") for n in names)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "import smsgw, smsgw.carrier.profile as p\n"
        f"assert smsgw.__file__.startswith({str(site)!r}), smsgw.__file__\n"
        "assert 'generic' in p.list_profiles()\n"
        "print(sorted(x.tapname for x in getPlugins(IServiceMaker)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "'smsgw'" in out
    assert "'smsgw-smsc'" in out


def test_bad_config_stops_twistd_with_key_paths(tmp_path: Path) -> None:
    """postOptions raises UsageError naming each bad key, before daemonising."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "intake: {listen: 'tcp:7400'}\n"
        "carriers:\n"
        "  - {name: a, connect: 'tcp:host=x:port=1', system_id: s, password: p,\n"
        "     source_addr: '1', tps: fast}\n"
    )
    options = tap.Options()
    with pytest.raises(usage.UsageError, match=r"carriers\[0\]\.tps"):
        options.parseOptions(["--config", str(bad)])


def test_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    """A config path that does not exist is named in the error."""
    with pytest.raises(usage.UsageError, match="not found"):
        tap.Options().parseOptions(["--config", str(tmp_path / "nope.yaml")])

"""The examples and the README's quickstart command keep working.

`examples/` is what users copy: every file must be `terraform fmt` clean, and
the quickstart (the README's main-job command) must run end to end: build,
emulator, apply, publish (twice), sweep, print the published document and the
bastion's rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, TERRAFORM_VERSIONS, TOOLS, VENV, flocked


def test_examples_are_terraform_fmt_clean():
    result = subprocess.run(
        [str(VENV / "bin" / "terraform-1.15.5"), "fmt", "-check", "-recursive", "-diff", "examples"],
        cwd=REPO,
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The quickstart re-runs scripts/testbed-setup (rewriting the venv's Terraform launchers) and
# cargo build: no other test may run meanwhile (see the conftest docstring).
@pytest.mark.exclusive
def test_quickstart_runs_end_to_end():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    result = subprocess.run(
        [str(REPO / "scripts" / "quickstart")],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for cidr in ("198.51.100.10/32", "198.51.100.11/32", "198.51.100.20/32", "198.51.100.30/32"):
        assert f"  {cidr}\n" in out
    assert "203.0.113." not in out, "untagged / deleted gateways are not listed"
    assert "Temporary ingress: 198.51.100.7/32 on port 22 until" in out
    assert "allowlist:managed-by = allowlist" in out
    # The publisher: the document and the text list on S3, written once, then unchanged.
    json_part = out.split("s3://allowlist-quickstart/ip-ranges.json (application/json; public, max-age=300):\n", 1)[1]
    document = json.loads(json_part.split("\n\ns3://", 1)[0])
    assert [p["ip_prefix"] for p in document["prefixes"]] == [
        "198.51.100.10/32", "198.51.100.11/32", "198.51.100.20/32", "198.51.100.30/32"]
    assert "198.51.100.10/32\n198.51.100.11/32\n198.51.100.20/32\n198.51.100.30/32\n" in out
    publishes = [line for line in result.stderr.splitlines() if "publish summary" in line]
    assert len(publishes) == 2 and "changed=true" in publishes[0] and "changed=false" in publishes[1]
    assert f"sync_token={document['syncToken']}" in publishes[1]
    # The sweep removed the expired grant's rule and kept the one Terraform just made.
    assert "sweep summary regions=1 expired=1 revoked=1" in result.stderr
    rules = out.split("after the sweep:", 1)[1]
    assert "192.0.2.44" not in rules and "from 198.51.100.7/32" in rules
    assert "quickstart: ok" in result.stderr


@dataclass
class Release:
    """What one `scripts/release --debug` run produced: its HOME, dist dir and version."""

    home: Path
    dist: Path
    version: str


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """Package the (debug) build as a release, once per test run, and install it where Terraform
    looks by itself (`~/.terraform.d/plugins` of a HOME of its own). Under pytest-xdist the
    workers share the run's base temp dir: the first one to get here packages, the others
    wait for it and use the same release."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's own dir, holding every worker's
    root = base / "release"
    plugins = root / "home" / ".terraform.d" / "plugins"
    dist = root / "dist"
    with flocked(base / "release.lock"):
        if not (root / "packaged").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed attempt left
            root.mkdir()
            with TOOLS.exclusive():  # its cargo build may relink target/debug: no other test meanwhile
                result = subprocess.run(
                    [str(REPO / "scripts" / "release"), "--debug", "--plugins-dir", str(plugins), "--dist", str(dist)],
                    cwd=REPO, capture_output=True, text=True, timeout=600,
                )
            assert result.returncode == 0, result.stdout + result.stderr
            (root / "packaged").touch()
    version = next(p.name for p in (plugins / "registry.terraform.io/allowlist/allowlist").iterdir())
    return Release(home=root / "home", dist=dist, version=version)


def test_release_artefacts(release):
    dist, version_string = release.dist, release.version
    artefacts = sorted(p.name for p in dist.iterdir())
    assert artefacts == sorted([
        f"allowlist-publisher_{version_string}_linux_amd64.zip",
        f"terraform-provider-allowlist_{version_string}_linux_amd64.zip",
        f"terraform-provider-allowlist_{version_string}_manifest.json",
        f"terraform-provider-allowlist_{version_string}_SHA256SUMS",
    ])
    # The checksums match, and the manifest says protocol 6.0.
    sums = (dist / f"terraform-provider-allowlist_{version_string}_SHA256SUMS").read_text().splitlines()
    assert len(sums) == 3
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name
    manifest = json.loads((dist / f"terraform-provider-allowlist_{version_string}_manifest.json").read_text())
    assert manifest["metadata"]["protocol_versions"] == ["6.0"]
    with zipfile.ZipFile(dist / f"terraform-provider-allowlist_{version_string}_linux_amd64.zip") as z:
        assert z.namelist() == [f"terraform-provider-allowlist_v{version_string}"]


@pytest.mark.parametrize("version", TERRAFORM_VERSIONS)
def test_release_install_lets_terraform_init_work_offline(release, tmp_path, version):
    # `terraform init` in a copy of examples/quickstart, offline, with no CLI config at all.
    work = tmp_path / "quickstart"
    shutil.copytree(REPO / "examples" / "quickstart", work)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(release.home),
        "TF_CLI_CONFIG_FILE": "/dev/null",
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }
    init = subprocess.run(
        [str(VENV / "bin" / f"terraform-{version}"), "init", "-no-color"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"Installed allowlist/allowlist v{release.version}" in init.stdout, init.stdout
    assert (work / ".terraform.lock.hcl").exists()

"""The examples and the README's quickstart command keep working.

`examples/` is what users copy: every file must be `terraform fmt` clean, and
the quickstart (the README's main-job command) must run end to end: build,
emulator, apply, print the egress list and the granted rule.
"""

from __future__ import annotations

import os
import subprocess

from conftest import REPO, VENV


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
    assert "quickstart: ok" in result.stderr

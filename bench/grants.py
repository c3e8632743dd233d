"""Grants benchmark: 50 `allowlist_temporary_ingress` grants under real Terraform, wall time and
AWS API calls of apply, the no-change plan after it, and destroy.

Setup (once): the test bed's emulator (testbed/emulator.py via `testbed.seed.Emulator`) and the
loopback IP lookup stand-in (`MyIpServer` from tests/acceptance/conftest.py); 5 security groups in
us-east-1; one config with `count = 50` grants, grant i in group i % 5 on TCP port 20000 + i (so no
two grants open the same rule), cidr_blocks ["198.51.100.7/32"], ttl "1h".

Then for Terraform 1.0.3 and 1.15.5 separately, each in a fresh work dir with the acceptance
tests' hermetic environment (`cli_config` dev_overrides -> target/debug, `terraform_env`), and
`--repeat` times (default 3):
  (a) `terraform apply`                          wall time, AWS calls by action;
  (b) `terraform plan -detailed-exitcode`        must exit 0 (no changes); wall time, calls.
      Target: refresh costs one DescribeSecurityGroupRules per region (here 1), never one per
      grant;
  (c) `terraform destroy`                        wall time, calls.
The emulator's request counters are cleared before each phase and read right after it (before the
benchmark's own boto3 checks: 50 managed rules after apply, none left after destroy).

    .venv/bin/python bench/grants.py [--repeat 3] [--grants 50]

Needs target/debug/terraform-provider-allowlist (`cargo build -p terraform-provider-allowlist`)
and scripts/testbed-setup. Writes bench/results/grants.md. Only 127.0.0.1 is contacted; every
terraform run is bounded (RUN_TIMEOUT, its process group killed on timeout or on any exit of this
script), the whole benchmark by --budget seconds; the emulator and IP server are stopped on the way
out, also on failure or SIGTERM/SIGINT/SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "acceptance")]

import conftest  # noqa: E402  (tests/acceptance/conftest.py)
from conftest import (  # noqa: E402
    PROVIDER_DIR,
    TERRAFORM_VERSIONS,
    VENV,
    MyIpServer,
    TerraformRunner,
    cli_config,
    terraform_env,
    venv_python,
)
from testbed.seed import Emulator, without_aws_env  # noqa: E402

REGION = "us-east-1"
GROUPS = 5
BASE_PORT = 20000
CIDR = "198.51.100.7/32"
RESULTS = ROOT / "bench" / "results"
MANAGED_BY = "allowlist:managed-by"


def exit_on_signals(budget: float) -> None:
    """SIGTERM/SIGHUP/SIGINT and the overall budget (SIGALRM) unwind through `finally` blocks."""

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGALRM:
            print(f"bench/grants.py: over the budget of {budget:.0f}s, stopping", file=sys.stderr)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, handler)
    signal.alarm(int(budget))


def config(ip_url: str, groups: list[str], grants: int) -> str:
    return f"""
terraform {{
  required_providers {{
    allowlist = {{ source = "allowlist/allowlist" }}
  }}
}}

provider "allowlist" {{
  ip_lookup_url = "{ip_url}"
}}

locals {{
  groups = [{", ".join(f'"{g}"' for g in groups)}]
}}

resource "allowlist_temporary_ingress" "g" {{
  count              = {grants}
  security_group_ids = [local.groups[count.index % length(local.groups)]]
  ports              = [{BASE_PORT} + count.index]
  cidr_blocks        = ["{CIDR}"]
  ttl                = "1h"
  description        = "bench grant ${{count.index}}"
}}
"""


def calls_by_action(emulator: Emulator) -> tuple[Counter, set[str]]:
    """AWS calls since the last clear, by action; and the regions they went to."""
    rows = emulator.requests()["requests"]
    by_action: Counter = Counter()
    for row in rows:
        by_action[row["action"]] += row["count"]
    return by_action, {row["region"] for row in rows}


def managed_rules(emulator: Emulator, groups: list[str]) -> list[dict]:
    ec2 = emulator.client("ec2", REGION)
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": groups}])[
        "SecurityGroupRules"
    ]
    return [
        r for r in rules
        if not r["IsEgress"] and any(t["Key"] == MANAGED_BY for t in r.get("Tags", []))
    ]


def measure(
    runner: TerraformRunner, emulator: Emulator, phase: str, groups: list[str], grants: int
) -> dict[str, Any]:
    emulator.clear_requests()
    if phase == "apply":
        runner.apply()
    elif phase == "plan":
        rc = runner.plan_detailed()
        if rc != 0:
            plan = runner.run("plan", "-no-color", check=False)
            raise SystemExit(
                f"terraform {runner.version}: plan after apply wants changes (rc {rc}):\n{plan.stdout}"
            )
    else:
        runner.destroy()
    wall = runner.last_wall
    calls, regions = calls_by_action(emulator)
    # Checks after reading the counters (they make AWS calls of their own).
    rules = managed_rules(emulator, groups)
    want = 0 if phase == "destroy" else grants
    if len(rules) != want:
        raise SystemExit(f"terraform {runner.version} {phase}: {len(rules)} managed rules, expected {want}")
    if phase != "destroy":
        ports = sorted(r["FromPort"] for r in rules)
        if ports != list(range(BASE_PORT, BASE_PORT + grants)):
            raise SystemExit(f"terraform {runner.version} {phase}: unexpected rule ports {ports}")
    return {"wall": wall, "calls": calls, "regions": regions}


def fmt_calls(samples: list[Counter]) -> str:
    """Median per action over the repeats ("a-b" when the repeats disagree), then the total."""
    actions = sorted(set().union(*samples))
    parts = []
    for action in actions:
        values = [s.get(action, 0) for s in samples]
        med = statistics.median(values)
        med_s = f"{med:g}"
        if min(values) != max(values):
            med_s += f" ({min(values)}-{max(values)})"
        parts.append(f"{action} {med_s}")
    totals = [sum(s.values()) for s in samples]
    parts.append(f"**total {statistics.median(totals):g}**")
    return "<br>".join(parts) if parts else "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--grants", type=int, default=50)
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, work dirs)")
    args = parser.parse_args()
    exit_on_signals(args.budget)

    provider = PROVIDER_DIR / "terraform-provider-allowlist"
    if not provider.exists():
        raise SystemExit(f"{provider} is missing: cargo build -p terraform-provider-allowlist")
    binaries = {v: VENV / "bin" / f"terraform-{v}" for v in TERRAFORM_VERSIONS}
    for binary in binaries.values():
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: run scripts/testbed-setup")

    # Hermetic like the acceptance tests: no inherited AWS_* in this process (boto3 seed clients).
    for name in set(os.environ) - set(without_aws_env()):
        del os.environ[name]

    scratch = Path(tempfile.mkdtemp(prefix="bench-grants-"))
    emulator: Emulator | None = None
    ip_server: MyIpServer | None = None
    ok = False
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        emulator = Emulator.launch(venv_python(), scratch / "emulator.log", timeout=conftest.READY_TIMEOUT)
        ip_server = MyIpServer()
        groups = [emulator.seed.security_group(REGION, f"bench-{i}") for i in range(GROUPS)]
        tf_config = config(ip_server.url, groups, args.grants)

        for version, binary in binaries.items():
            home = scratch / f"tf{version}"
            (home / "work").mkdir(parents=True)
            rc_file = home / "terraform.tfrc"
            rc_file.write_text(cli_config(PROVIDER_DIR))
            runner = TerraformRunner(version, binary, home / "work", terraform_env(rc_file, emulator.url))
            runner.write("main.tf", tf_config)
            phases: dict[str, list[dict[str, Any]]] = {"apply": [], "plan": [], "destroy": []}
            for i in range(args.repeat):
                for phase in phases:
                    m = measure(runner, emulator, phase, groups, args.grants)
                    phases[phase].append(m)
                    print(
                        f"tf {version} #{i + 1} {phase}: {m['wall']:.2f}s, "
                        f"{sum(m['calls'].values())} calls {dict(sorted(m['calls'].items()))} "
                        f"regions {sorted(m['regions'])}",
                        file=sys.stderr, flush=True,
                    )
            results[version] = phases

        rows = []
        for version, phases in results.items():
            for phase, samples in phases.items():
                walls = [s["wall"] for s in samples]
                rows.append([
                    version,
                    {"apply": "apply", "plan": "plan (no change)", "destroy": "destroy"}[phase],
                    f"{statistics.median(walls):.2f}",
                    " / ".join(f"{w:.2f}" for w in walls),
                    fmt_calls([s["calls"] for s in samples]),
                ])
        headers = ["terraform", "phase", "median wall s", "runs s", "AWS calls by action (median)"]
        table = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        plan_dsgr = [
            s["calls"].get("DescribeSecurityGroupRules", 0)
            for phases in results.values() for s in phases["plan"]
        ]
        verdict = "met" if max(plan_dsgr) <= 1 else "NOT met"
        markdown = (
            f"## grants: {args.grants} `allowlist_temporary_ingress` grants, {GROUPS} groups, 1 region\n\n"
            f"{args.repeat} repeats per Terraform version (one work dir per version; each repeat is "
            f"apply, then a no-change `plan -detailed-exitcode`, then destroy). Provider: debug build "
            f"`{provider.relative_to(ROOT) if provider.is_relative_to(ROOT) else provider}`; AWS: "
            f"testbed emulator (moto) on 127.0.0.1; calls counted by the emulator per phase. "
            f"IP lookups: {ip_server.hits} (explicit cidr_blocks).\n\n"
            + "\n".join(table) + "\n\n"
            f"Refresh target (no-change plan: DescribeSecurityGroupRules <= 1 per region, here 1): "
            f"**{verdict}** (seen: {sorted(set(plan_dsgr))}).\n"
        )
        RESULTS.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS / "grants.md.tmp"
        tmp.write_text(markdown)
        tmp.replace(RESULTS / "grants.md")
        sys.stdout.write(markdown)
        ok = True
        return 0
    finally:
        signal.alarm(0)
        if ip_server is not None:
            ip_server.stop()
        if emulator is not None:
            emulator.stop()
        if ok and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"bench/grants.py: scratch dir (emulator log, work dirs) kept: {scratch}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

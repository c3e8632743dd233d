"""Revocation benchmark: how long after its expiry `allowlist-publisher run --every 5m` revokes a
short grant (the wake-up for the earliest expiry, publisher/src/run.rs).

Against the test bed's emulator (testbed/emulator.py via `testbed.seed.Emulator`, on 127.0.0.1),
--runs times (default 5), the emulator reset before each run:
  seed a bucket, one `Name=egress` NAT gateway and a security group with one managed rule
  (boto3, TagSpecifications `security-group-rule`: `allowlist:managed-by=allowlist`,
  `allowlist:grant-id`, `allowlist:expires-at` = the whole second --ttl seconds from now, default
  20); start `allowlist-publisher --log-format json --log-level debug run --every 5m --regions
  us-east-1 --tag Name=egress --bucket B`; once its first `sweep summary` is logged, poll the group's
  rules (DescribeSecurityGroupRules, group-id filter) every 50 ms until the rule is gone; stop the
  publisher (SIGTERM to its process group).
Measured per run: the delay from `expires-at` to the first poll that finds the rule gone (an upper
bound: it includes up to one poll interval and the poll's own round trip), and from `expires-at`
to the timestamp of the publisher's `revoked` debug line (when the RevokeSecurityGroupIngress call
had returned). Checked per run: exactly one publish summary (the wake-up does not publish), two
sweep summaries (the first cycle's, revoked 0; the wake-up's, revoked 1), one `woke for an expiry`.
Target: revoked within 5 s of the expiry (issue 14), every run.

    .venv/bin/python bench/revocation.py [--runs 5] [--ttl 20] [--binary PATH]

The binary defaults to target/release/allowlist-publisher, else target/debug/allowlist-publisher
(the delay is scheduling, not CPU: a debug build measures the same). Writes
bench/results/revocation.{json,md}. Every run is bounded (--ttl + 60 s), the whole benchmark by
--budget seconds; the publisher's process group and the emulator are stopped on the way out, also
on failure or SIGTERM/SIGINT/SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common
from seed import Emulator  # testbed/seed.py

RELEASE = common.ROOT / "target" / "release" / "allowlist-publisher"
DEBUG = common.ROOT / "target" / "debug" / "allowlist-publisher"
REGION = "us-east-1"
BUCKET = "bench-ip-ranges"
POLL_S = 0.05
TARGET_S = 5.0


def logs(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def when(record: dict[str, Any]) -> float:
    """A JSON log line's timestamp (RFC 3339 with fractions) as Unix seconds."""
    stamp = record["timestamp"].replace("Z", "+00:00")
    head, _, rest = stamp.partition(".")
    fraction, sign, zone = rest.partition("+")
    base = datetime.fromisoformat(f"{head}+{zone}" if sign else head).timestamp()
    return base + (float(f"0.{fraction}") if fraction else 0.0)


def one_run(n: int, binary: Path, emulator: Emulator, scratch: Path, ttl: int) -> dict[str, Any]:
    emulator.reset()
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway(REGION, {"Name": "egress"}, ips=["198.18.0.1"])
    group = seed.security_group(REGION, "bastion")
    expires = math.ceil(time.time()) + ttl
    rule = seed.managed_rule(REGION, group, "198.51.100.1/32", 22, datetime.fromtimestamp(expires, timezone.utc))
    ec2 = seed.ec2(REGION)

    def present() -> bool:
        rules = ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
        return any(r["SecurityGroupRuleId"] == rule for r in rules)

    home = scratch / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in common.clean_env({
        "AWS_ENDPOINT_URL": emulator.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(home),
    }).items() if not k.startswith("ALLOWLIST_")}
    stderr_path = scratch / f"run-{n}.stderr"
    args = ["--log-format", "json", "--log-level", "debug", "run", "--every", "5m", "--regions", REGION,
            "--tag", "Name=egress", "--bucket", BUCKET]
    with open(stderr_path, "wb") as err:
        process = subprocess.Popen([str(binary), *args], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + ttl + 60
        gone_at = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"run {n}: the publisher exited {process.returncode}\n"
                                 f"{stderr_path.read_text()[-4000:]}")
            if not present():
                gone_at = time.time()
                break
            time.sleep(POLL_S)
        if gone_at is None:
            raise SystemExit(f"run {n}: the rule was not revoked within {ttl + 60} s")
        time.sleep(1.5)  # let the logs settle; a busy loop would show as more sweeps here
    finally:
        common.stop_group(process)
    records = logs(stderr_path)
    messages = [r.get("message", "") for r in records]
    sweeps = [r for r in records if r.get("message") == "sweep summary"]
    revoked = [r for r in records if r.get("message") == "revoked"]
    if messages.count("publish summary") != 1 or len(sweeps) != 2 or messages.count(
            "woke for an expiry: sweeping (no publish)") != 1 or len(revoked) != 1:
        raise SystemExit(f"run {n}: unexpected log (publish/sweep/wake counts)\n{stderr_path.read_text()[-4000:]}")
    if (sweeps[0]["revoked"], sweeps[1]["revoked"]) != (0, 1):
        raise SystemExit(f"run {n}: sweep summaries {sweeps}")
    return {
        "run": n,
        "expires_at": expires,
        "observed_delay_s": gone_at - expires,
        "logged_delay_s": when(revoked[0]) - expires,
        "wake_sweep_logged_at": sweeps[1]["timestamp"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttl", type=int, default=20, help="seconds from seeding to expires-at")
    default = RELEASE if RELEASE.exists() else DEBUG
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("ALLOWLIST_PUBLISHER", default)))
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the whole run")
    args = parser.parse_args()
    common.exit_on_signals()

    common.budget("bench/revocation.py", args.budget)
    binary = args.binary.resolve()
    common.require(binary, "cargo build -p allowlist-publisher")
    common.drop_aws_env()

    scratch = Path(tempfile.mkdtemp(prefix="bench-revocation-"))
    emulator: Emulator | None = None
    ok = False
    runs: list[dict[str, Any]] = []
    try:
        emulator = Emulator.launch(str(common.PYTHON), scratch / "emulator.log")
        for n in range(args.runs):
            runs.append(one_run(n, binary, emulator, scratch, args.ttl))
            print(f"run {n}: revoked {runs[-1]['logged_delay_s']:.2f} s after expires-at "
                  f"(seen gone {runs[-1]['observed_delay_s']:.2f} s after)", file=sys.stderr)
        ok = True
    finally:
        signal.alarm(0)
        if emulator is not None:
            emulator.stop()
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"bench/revocation.py: scratch dir kept: {scratch}", file=sys.stderr)

    observed = [r["observed_delay_s"] for r in runs]
    logged = [r["logged_delay_s"] for r in runs]
    met = max(observed) <= TARGET_S
    try:
        rel = binary.relative_to(common.ROOT)
    except ValueError:
        rel = binary
    head = subprocess.run(["git", "-C", str(common.ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    rows = [[name, len(v), f"{min(v):.2f}", f"{statistics.median(v):.2f}", f"{max(v):.2f}"]
            for name, v in (("revoke call returned (publisher log)", logged),
                            ("rule seen gone (50 ms polls)", observed))]
    markdown = (
        f"### allowlist-publisher run --every 5m: revocation delay after expires-at\n\n"
        f"Binary `{rel}` (git HEAD {head or '?'}), run {common.machine()['date']}, nproc "
        f"{os.cpu_count()}, load before {open('/proc/loadavg').read().split()[0]}; a {args.ttl}-second "
        f"grant per run, emulator on 127.0.0.1.\n\n"
        + common.md_table(["delay after expires-at, s", "runs", "min", "median", "max"], rows)
        + f"\nTarget ≤ {TARGET_S:.0f} s every run: **{'met' if met else 'NOT met'}**. Every run: one "
          f"publish, two sweeps (the cycle's, revoked 0; the wake-up's, revoked 1), one wake-up.\n"
    )
    common.write_results("revocation", {"machine": common.machine(), "binary": str(rel), "ttl": args.ttl,
                                        "runs": runs}, markdown)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

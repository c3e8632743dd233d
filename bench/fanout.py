"""Fan-out benchmark: wall time of the egress lookup across N regions vs the slowest region alone.

`allowlist_core::egress::lookup` asks every region concurrently, so N regions should cost about
what the slowest one costs. This measures it with core/examples/lookup.rs (built in release mode)
against the test bed's emulator (testbed/emulator.py):

* one NAT gateway tagged `Name=proxy-<region>` (one public IP) in each of the 17 regions the
  emulator serves;
* a delay fault on DescribeNatGateways per region: the i-th region of common.REGIONS sleeps
  150 + 5*i ms, so sa-east-1 (i=16, 230 ms) is the one slowest region;
* cases: sa-east-1 alone; 3 regions (us-east-1 150 ms, eu-central-1 190 ms, sa-east-1 230 ms);
  all 17 regions. Each case is one `lookup` process: 1 warm-up lookup (cold clients and
  connections; reported separately), then 5 timed lookups; the median is compared with the
  median of sa-east-1 alone (target: <= 1.3x).
* the same 1- and 17-region cases with no injected delay, to show what the emulator itself
  (moto in one Python process, GIL-bound) costs per concurrent request.
Every lookup's address count is checked (one per region), and the emulator's request counter
confirms one DescribeNatGateways per region per lookup (no retries, no extra pages).

    .venv/bin/python bench/fanout.py [--repeat 5] [--warmup 1]

Needs target/bench/release/examples/lookup:
    CARGO_TARGET_DIR=target/bench cargo build --release --example lookup -p allowlist-core
Writes bench/results/fanout.{json,md}. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from seed import Emulator  # testbed/seed.py

BASE_DELAY_MS, STEP_MS = 150, 5
SLOWEST = common.REGIONS[-1]
THREE = [common.REGIONS[0], common.REGIONS[8], SLOWEST]
RUN_TIMEOUT = 120.0


def delay_ms(region: str) -> int:
    return BASE_DELAY_MS + STEP_MS * common.REGIONS.index(region)


def run_lookup(env: dict[str, str], regions: list[str], repeat: int, warmup: int) -> list[dict]:
    cmd = [str(common.LOOKUP_EXAMPLE), "--regions", ",".join(regions), "--tag", "Name=*proxy*",
           "--repeat", str(repeat), "--warmup", str(warmup)]
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    bad = [r for r in runs if "error" in r or r.get("addresses") != len(regions)]
    if done.returncode != 0 or bad or len(runs) != repeat + warmup:
        raise SystemExit(f"lookup {regions} failed (rc {done.returncode}): {bad or runs}\n{done.stderr}")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    common.exit_on_signals()
    common.require(common.LOOKUP_EXAMPLE, "CARGO_TARGET_DIR=target/bench cargo build --release --example lookup -p allowlist-core")

    scratch = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    emulator = Emulator.launch(str(common.PYTHON), scratch / "emulator.log")
    cases = []
    try:
        for i, region in enumerate(common.REGIONS):
            emulator.seed.nat_gateway(region, {"Name": f"proxy-{region}"}, ips=[f"198.18.{i}.1"])
        empty = scratch / "empty"
        empty.write_text("")
        env = common.clean_env({
            "AWS_ENDPOINT_URL": emulator.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            # No shared config/credentials files of the machine's user.
            "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        })
        faults = [{"region": r, "service": "ec2", "action": "DescribeNatGateways", "mode": "delay",
                   "delay_ms": delay_ms(r)} for r in common.REGIONS]
        plan = [
            ("slowest region alone", [SLOWEST], True),
            ("3 regions", THREE, True),
            ("17 regions", common.REGIONS, True),
            ("1 region, no delay", [SLOWEST], False),
            ("17 regions, no delay", common.REGIONS, False),
        ]
        for name, regions, delayed in plan:
            if delayed:
                emulator.set_faults(faults)
            else:
                emulator.clear_faults()
            before = emulator.count(action="DescribeNatGateways")
            runs = run_lookup(env, regions, args.repeat, args.warmup)
            calls = emulator.count(action="DescribeNatGateways") - before
            expected_calls = len(regions) * (args.repeat + args.warmup)
            if calls != expected_calls:
                raise SystemExit(f"{name}: {calls} DescribeNatGateways calls, want {expected_calls}")
            timed = [r["wall_ms"] for r in runs if not r["warmup"]]
            cases.append({
                "case": name, "regions": regions, "delayed": delayed,
                "slowest_delay_ms": max(delay_ms(r) for r in regions) if delayed else 0,
                "wall_ms": timed, "median_ms": statistics.median(timed), "min_ms": min(timed),
                "max_ms": max(timed), "warmup_ms": [r["wall_ms"] for r in runs if r["warmup"]],
                "describe_calls": calls,
            })
            print(f"  {name}: median {statistics.median(timed):.1f} ms {timed}", file=sys.stderr)
    finally:
        emulator.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    base = {True: cases[0]["median_ms"], False: cases[3]["median_ms"]}
    rows = []
    for c in cases:
        c["ratio"] = c["median_ms"] / base[c["delayed"]]
        rows.append([
            c["case"], len(c["regions"]),
            f"{c['slowest_delay_ms']}" if c["delayed"] else "0",
            f"{c['median_ms']:.1f}", f"{c['min_ms']:.1f}", f"{c['max_ms']:.1f}",
            " / ".join(f"{x:.1f}" for x in c["warmup_ms"]) or "-",
            f"{c['ratio']:.2f}x" + ("" if not c["delayed"] or c["ratio"] <= 1.3 else " (over 1.3x)"),
        ])
    markdown = (
        f"### Egress lookup fan-out ({args.repeat} lookups per case after {args.warmup} warm-up; "
        f"DescribeNatGateways delay {BASE_DELAY_MS}+{STEP_MS}*i ms)\n\n"
        + common.md_table(
            ["case", "regions", "slowest injected delay ms", "median ms", "min ms", "max ms",
             "warm-up (cold) ms", "ratio to 1 region"],
            rows,
        )
        + "\nRatios of the delayed cases are to *slowest region alone*; of the no-delay cases, to "
          "*1 region, no delay*.\n"
    )
    common.write_results("fanout", {"machine": common.machine(), "cases": cases}, markdown)


if __name__ == "__main__":
    main()

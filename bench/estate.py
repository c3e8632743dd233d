"""Estate benchmark: the egress lookup over 10 accounts × 17 regions vs the slowest single lookup.

`allowlist_core::egress::lookup` reaches every account (one AssumeRole each, per process) and asks
every account × region concurrently, so 170 lookups should cost about what the slowest one costs.
Measured with core/examples/lookup.rs against the test bed's emulator (testbed/emulator.py):

* 10 accounts (reached through `arn:aws:iam::<id>:role/reader`; moto lands the credentials in
  that account), each with one NAT gateway tagged `Name=proxy` in each of the 17 regions: 170
  gateways, one public IP each;
* a delay fault on DescribeNatGateways per region, as in bench/fanout.py: the i-th region of
  common.REGIONS sleeps 150 + 5*i ms, so sa-east-1 (230 ms) is the slowest lookup;
* cases: one account, sa-east-1 alone; 10 accounts × 17 regions. Each case is one `lookup`
  process: 1 warm-up lookup (AssumeRole, cold clients and connections), then 5 timed lookups; the
  median is compared with the median of the single lookup (target: <= 1.3x);
* AssumeRole calls per process are counted at the emulator (target: one per account);
* with --provider PATH: the peak RSS of the provider during a real `terraform plan` (1.15.5) of
  one `allowlist_egress_ips` with 10 `account` blocks over the 17 regions, through
  bench/rss_wrapper.c as in bench/plan_rss.py (target: < 25 MB), and its AssumeRole calls.
The hashicorp/aws alternative needs one provider alias per account × region: 170 aliases, each
its own plugin process.

    .venv/bin/python bench/estate.py [--repeat 5] [--warmup 1] [--lookup PATH] [--provider PATH]

Needs the lookup example (release: target/bench/release/examples/lookup, or --lookup
target/debug/examples/lookup). Writes bench/results/estate.{json,md}. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common
from seed import Emulator  # testbed/seed.py

BASE_DELAY_MS, STEP_MS = 150, 5
SLOWEST = common.REGIONS[-1]
ACCOUNTS = [f"{n:012d}" for n in range(210000000001, 210000000011)]
RUN_TIMEOUT = 300.0


def delay_ms(region: str) -> int:
    return BASE_DELAY_MS + STEP_MS * common.REGIONS.index(region)


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/reader"


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def emulator_cpu(emulator: Emulator) -> float:
    """CPU seconds (user + system, all threads) the emulator process has used so far."""
    assert emulator.process is not None
    fields = Path(f"/proc/{emulator.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_lookup(lookup: Path, env: dict[str, str], accounts: list[str], regions: list[str],
               repeat: int, warmup: int) -> list[dict]:
    cmd = [str(lookup), "--regions", ",".join(regions), "--tag", "Name=proxy",
           "--repeat", str(repeat), "--warmup", str(warmup)]
    for account in accounts:
        cmd += ["--assume-role", role(account)]
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    want = len(accounts) * len(regions)
    bad = [r for r in runs if "error" in r or r.get("addresses") != want]
    if done.returncode != 0 or bad or len(runs) != repeat + warmup:
        raise SystemExit(f"lookup failed (rc {done.returncode}): {bad or runs}\n{done.stderr}")
    return runs


def provider_plan_rss(provider: Path, emulator: Emulator, scratch: Path) -> dict:
    """Peak RSS (KiB) of each provider process of one `terraform plan` over the whole estate."""
    records = scratch / "records"
    records.mkdir()
    overrides = scratch / "overrides"
    overrides.mkdir()
    subprocess.run([os.environ.get("CC", "cc"), "-O2", f'-DREAL="{provider.resolve()}"',
                    f'-DRECORDS="{records}"', str(common.BENCH / "rss_wrapper.c"),
                    "-o", str(overrides / "terraform-provider-allowlist")], check=True)
    work = scratch / "plan"
    work.mkdir()
    cli = scratch / "tfrc"
    cli.write_text('provider_installation {\n  dev_overrides { "allowlist/allowlist" = "%s" }\n  direct {}\n}\n'
                   % overrides)
    blocks = "".join(f'  account {{ role_arn = "{role(a)}" }}\n' for a in ACCOUNTS)
    (work / "main.tf").write_text(
        'terraform {\n  required_providers {\n    allowlist = { source = "allowlist/allowlist" }\n  }\n}\n'
        f'provider "allowlist" {{\n  egress_regions = {json.dumps(common.REGIONS)}\n}}\n'
        f'data "allowlist_egress_ips" "estate" {{\n  tags = {{ Name = "proxy" }}\n{blocks}}}\n'
        'output "n" { value = length(data.allowlist_egress_ips.estate.cidrs) }\n')
    env = common.clean_env({
        "TF_CLI_CONFIG_FILE": str(cli), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0",
        "AWS_ENDPOINT_URL": emulator.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    })
    emulator.clear_requests()
    done = subprocess.run([str(common.TERRAFORMS["1.15.5"]), "plan", "-no-color"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    want = len(ACCOUNTS) * len(common.REGIONS)
    if done.returncode != 0 or f"n = {want}" not in done.stdout:
        raise SystemExit(f"plan failed (rc {done.returncode}):\n{done.stdout}\n{done.stderr}")
    peaks = [json.loads(p.read_text())["maxrss_kib"] for p in records.glob("*.json")]
    return {"provider": str(provider), "processes": len(peaks), "peak_rss_kib": max(peaks),
            "assume_role_calls": emulator.count(action="AssumeRole"), "addresses": want}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--lookup", type=Path, default=common.LOOKUP_EXAMPLE)
    parser.add_argument("--provider", type=Path, help="also measure this provider binary's peak RSS")
    parser.add_argument("--no-read-cache", action="store_true",
                        help="make the emulator send every read to moto (testbed/emulator.py ReadCache)")
    args = parser.parse_args()
    common.exit_on_signals()
    common.require(args.lookup, "CARGO_TARGET_DIR=target/bench cargo build --release --example lookup -p allowlist-core")

    scratch = Path(tempfile.mkdtemp(prefix="bench-estate-"))
    emulator = Emulator.launch(str(common.PYTHON), scratch / "emulator.log", quiet=True)
    if args.no_read_cache:
        emulator.set_read_cache(False)
    cases = []
    rss = None
    try:
        def seed_account(n: int) -> None:
            seed = emulator.seed.in_account(ACCOUNTS[n])
            for i, region in enumerate(common.REGIONS):
                seed.nat_gateway(region, {"Name": "proxy"}, ips=[f"198.{18 + n}.{i}.1"])

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(seed_account, range(len(ACCOUNTS))))
        empty = scratch / "empty"
        empty.write_text("")
        env = common.clean_env({
            "AWS_ENDPOINT_URL": emulator.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        })
        faults = [{"region": r, "service": "ec2", "action": "DescribeNatGateways", "mode": "delay",
                   "delay_ms": delay_ms(r)} for r in common.REGIONS]
        plan = [
            ("1 account, slowest region alone", ACCOUNTS[:1], [SLOWEST], True),
            ("10 accounts x 17 regions", ACCOUNTS, common.REGIONS, True),
            ("1 account, 1 region, no delay", ACCOUNTS[:1], [SLOWEST], False),
            ("1 account x 17 regions, no delay", ACCOUNTS[:1], common.REGIONS, False),
            ("10 accounts x 17 regions, no delay", ACCOUNTS, common.REGIONS, False),
        ]
        for name, accounts, regions, delayed in plan:
            if delayed:
                emulator.set_faults(faults)
            else:
                emulator.clear_faults()
            emulator.clear_requests()
            cpu_before = children_cpu(), emulator_cpu(emulator)
            runs = run_lookup(args.lookup, env, accounts, regions, args.repeat, args.warmup)
            lookups = args.repeat + args.warmup
            lookup_cpu_ms = (children_cpu() - cpu_before[0]) * 1000 / lookups
            emulator_cpu_ms = (emulator_cpu(emulator) - cpu_before[1]) * 1000 / lookups
            assume = emulator.count(action="AssumeRole")
            cache_hits = emulator.requests()["read_cache_hits"]
            calls = emulator.count(action="DescribeNatGateways")
            if assume != len(accounts):
                raise SystemExit(f"{name}: {assume} AssumeRole calls, want {len(accounts)}")
            if calls != len(accounts) * len(regions) * (args.repeat + args.warmup):
                raise SystemExit(f"{name}: {calls} DescribeNatGateways calls")
            timed = [r["wall_ms"] for r in runs if not r["warmup"]]
            cases.append({
                "case": name, "accounts": len(accounts), "regions": len(regions), "delayed": delayed,
                "wall_ms": timed, "median_ms": statistics.median(timed), "min_ms": min(timed),
                "max_ms": max(timed), "warmup_ms": [r["wall_ms"] for r in runs if r["warmup"]],
                "assume_role_calls": assume, "describe_calls": calls,
                "lookup_cpu_ms": lookup_cpu_ms, "emulator_cpu_ms": emulator_cpu_ms,
                "read_cache_hits": cache_hits,
            })
            print(f"  {name}: median {statistics.median(timed):.1f} ms {timed}; AssumeRole {assume}; CPU per lookup: "
                  f"lookup {lookup_cpu_ms:.0f} ms, emulator {emulator_cpu_ms:.0f} ms",
                  file=sys.stderr)
        if args.provider:
            rss = provider_plan_rss(args.provider, emulator, scratch)
            print(f"  provider plan: {rss}", file=sys.stderr)
    finally:
        emulator.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    base = {True: cases[0]["median_ms"], False: cases[2]["median_ms"]}
    rows = []
    for c in cases:
        c["ratio"] = c["median_ms"] / base[c["delayed"]]
        rows.append([c["case"], c["accounts"] * c["regions"], f"{c['median_ms']:.1f}", f"{c['min_ms']:.1f}",
                     f"{c['max_ms']:.1f}", " / ".join(f"{x:.1f}" for x in c["warmup_ms"]),
                     c["assume_role_calls"], f"{c['ratio']:.2f}x", f"{c['lookup_cpu_ms']:.0f}",
                     f"{c['emulator_cpu_ms']:.0f}", c["read_cache_hits"]])
    markdown = (
        f"### Egress lookup over accounts ({args.repeat} lookups per case after {args.warmup} warm-up; "
        f"DescribeNatGateways delay {BASE_DELAY_MS}+{STEP_MS}*i ms; lookup binary {args.lookup.name})\n\n"
        + common.md_table(["case", "account x region lookups", "median ms", "min ms", "max ms",
                           "warm-up (AssumeRole, cold) ms", "AssumeRole calls", "ratio",
                           "lookup CPU ms / lookup", "emulator CPU ms / lookup", "reads answered by the emulator's read cache"],
                          rows)
        + "\nRatios of the delayed cases are to the slowest single lookup; of the no-delay cases, to one "
          "lookup with no delay (what the emulator, moto in one GIL-bound Python process, costs per "
          "concurrent request).\n"
        + "\nCPU per lookup: user + system time of the `lookup` process (its AssumeRole, start-up and "
          "warm-up included) and of the emulator process during the case, divided by the case's "
          f"{args.repeat + args.warmup} lookups. The emulator runs without a log line per request, keeps "
          "connections alive, and "
        + ("sends every read to moto (--no-read-cache).\n" if args.no_read_cache else
           "answers a read identical to an earlier one with no write in between from its read cache "
           "(testbed/emulator.py ReadCache; --no-read-cache turns it off).\n")
        + "\nhashicorp/aws for the same estate: 170 provider aliases, 170 plugin processes.\n"
    )
    if rss:
        markdown += (f"\nProvider `terraform plan` over the estate ({rss['addresses']} addresses, "
                     f"{Path(rss['provider']).parent.name} build): peak RSS "
                     f"{rss['peak_rss_kib'] / 1024:.1f} MiB over {rss['processes']} provider processes; "
                     f"AssumeRole calls {rss['assume_role_calls']}.\n")
    common.write_results("estate", {"machine": common.machine(), "cases": cases, "provider_plan": rss,
                                    "read_cache": not args.no_read_cache},
                         markdown)


if __name__ == "__main__":
    main()

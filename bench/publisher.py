"""Publisher benchmark: `allowlist-publisher publish` over 17 regions x 100 NAT gateways (first
write, then unchanged: no write) and `allowlist-publisher sweep` of 1,000 expired rules; wall time,
peak RSS and AWS API calls.

Against the test bed's emulator (testbed/emulator.py via `testbed.seed.Emulator`, on 127.0.0.1):

Publish. Seeded once (boto3 directly, several regions at a time): in each of the 17 regions of
common.REGIONS, 100 NAT gateways tagged `Name=egress-<region>-<i>` with the public IP
198.18.<region index>.<i + 1>, plus one `Name=database` gateway that must not be published; a
bucket and a CloudFront distribution. Then, each run one `allowlist-publisher` process:
  (a) first publish: `publish --regions <the 17> --tag Name=egress-* --bucket B
      --distribution-id D` (writes the document and invalidates);
  (b) the same, unchanged, --repeat times (default 5): no write, no invalidation;
  (c) unchanged with `--regions all` (adds DescribeRegions), once;
  (d) with `--text-key ip-ranges.txt`: once to write the text list, then once unchanged.
Every run's request counters are cleared before it and read after it. The published document is
checked (exactly the 1,700 tagged /32s; an unchanged run leaves ETag and syncToken alone), and so
is every run's `publish summary` log line (prefixes, changed).
Target: publish unchanged = 17 DescribeNatGateways + 1 S3 GET, 0 PUT, 0 CloudFront calls.

Sweep. --sweep-repeat times (default 3) per case, the emulator reset and re-seeded before each:
  (1) one region (us-east-1), 20 security groups x 50 expired managed rules;
  (2) 4 regions x 5 groups x 50 expired managed rules.
Expired rules carry `allowlist:managed-by=allowlist`, `allowlist:grant-id`, and an
`allowlist:expires-at` a week in the past, set by AuthorizeSecurityGroupIngress TagSpecifications
(`security-group-rule`; one call of 50 IpRanges per group). The first group of every region also
holds rules that must survive: 2 managed rules expiring in a day, 1 untagged rule, 1 expired rule
without the managed-by tag, and 1 expired rule `managed-by=someone-else`. After each sweep the
benchmark lists every ingress rule of the seeded groups and fails unless exactly the survivors
remain. Run: `sweep --regions <the case's regions>`.
Target: sweep calls <= regions + groups (+ pagination: one more DescribeSecurityGroupRules per
1,000 managed rules in a region beyond the first 1,000); one RevokeSecurityGroupIngress per group.

Measured per run: wall time (spawn to exit, as seen from here), peak RSS and CPU time of the
publisher process (bench/rss_wrapper.c, compiled with `cc` as bench/plan_rss.py does: the child's
ru_maxrss and rusage from wait4()), and the emulator's CPU time during the run (/proc/<pid>/stat of
the moto process), which with the request count gives the emulator's cost per request. Before
each sweep run, the listing the sweep makes (DescribeSecurityGroupRules, tag filter
`allowlist:managed-by=allowlist`) is also asked once per region from boto3 and timed: an upper
bound of the emulator's share of the sweep's wall time (boto3's parsing is in it).

    .venv/bin/python bench/publisher.py [--repeat 5] [--sweep-repeat 3] [--binary PATH]

Needs the release build (default target/release/allowlist-publisher):
    cargo build --release -p allowlist-publisher
Writes bench/results/publisher.{json,md}. Only 127.0.0.1 is contacted. Every publisher run is
bounded (RUN_TIMEOUT; its process group killed on timeout), the whole benchmark by --budget
seconds; the emulator is stopped on the way out, also on failure or SIGTERM/SIGINT/SIGHUP.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import common
from plan_rss import build_wrapper, read_records, wrapper_floor
from seed import Emulator  # testbed/seed.py

PUBLISHER = common.ROOT / "target" / "release" / "allowlist-publisher"
RUN_TIMEOUT = 180.0
GATEWAYS_PER_REGION = 100
SEED_WORKERS = 4
TAG = "Name=egress-*"
BUCKET = "bench-ip-ranges"
KEY = "ip-ranges.json"
TEXT_KEY = "ip-ranges.txt"

# The tag contract of `allowlist_temporary_ingress` (core/src/ingress.rs, `tags`).
MANAGED_BY, MANAGED_BY_VALUE = "allowlist:managed-by", "allowlist"
GRANT_ID, EXPIRES_AT = "allowlist:grant-id", "allowlist:expires-at"
RULES_PER_GROUP = 50
RULE_PAGE = 1000  # the publisher's DescribeSecurityGroupRules MaxResults (core/src/ingress.rs)
SWEEP_CASES = [
    ("1 region x 20 groups", ["us-east-1"], 20),
    ("4 regions x 5 groups", ["us-east-1", "eu-central-1", "ap-southeast-2", "sa-east-1"], 5),
]


# ---------------------------------------------------------------------------------------------
# Running the publisher
# ---------------------------------------------------------------------------------------------


class Runner:
    """Runs the publisher through the RSS wrapper and collects one record per run."""

    def __init__(self, binary: Path, scratch: Path, emulator: Emulator):
        self.records = scratch / "records"
        self.records.mkdir()
        self.wrapper = scratch / "allowlist-publisher-rss"
        build_wrapper(binary, self.records, self.wrapper)
        self.emulator = emulator
        home = scratch / "home"
        home.mkdir()
        env = common.clean_env({
            "AWS_ENDPOINT_URL": emulator.url, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(home),
        })
        # No inherited publisher settings either (every flag reads an ALLOWLIST_* variable).
        self.env = {k: v for k, v in env.items() if not k.startswith("ALLOWLIST_")}

    def run(self, label: str, args: list[str]) -> dict[str, Any]:
        """One publisher process: counters cleared before, read after. Fails loudly on a non-zero
        exit, a timeout or a missing RSS record."""
        for old in self.records.iterdir():
            old.unlink()
        self.emulator.clear_requests()
        cpu_before = emulator_cpu(self.emulator)
        cmd = [str(self.wrapper), "--log-format", "json", *args]
        start = time.perf_counter()
        process = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = process.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            common.stop_group(process)
            out, err = process.communicate()
            raise SystemExit(f"{label}: timed out after {RUN_TIMEOUT}s\n{err[-4000:]}")
        finally:
            common.stop_group(process)  # no-op when it exited
        wall = time.perf_counter() - start
        emulator_cpu_s = emulator_cpu(self.emulator) - cpu_before
        calls = calls_by_key(self.emulator)
        if process.returncode != 0:
            raise SystemExit(f"{label}: allowlist-publisher exited {process.returncode}\n"
                             f"command: {' '.join(args)}\nstderr:\n{err[-4000:]}")
        ends, lost = read_records(self.records)
        if len(ends) != 1 or lost:
            raise SystemExit(f"{label}: expected one RSS record, got {len(ends)} (+{lost} unfinished)")
        record = ends[0]
        logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        return {
            "label": label, "args": args, "wall_s": wall, "rss_mib": record["maxrss_kib"] / 1024,
            "cpu_s": record["utime_s"] + record["stime_s"], "emulator_cpu_s": emulator_cpu_s,
            "calls": calls, "logs": logs, "stdout": out,
        }


def emulator_cpu(emulator: Emulator) -> float:
    """CPU seconds (user + system, all threads) the emulator process has used so far."""
    assert emulator.process is not None
    fields = Path(f"/proc/{emulator.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def calls_by_key(emulator: Emulator) -> Counter:
    """AWS calls since the last clear, keyed "service Action" (S3/CloudFront: the HTTP method)."""
    calls: Counter = Counter()
    for row in emulator.requests()["requests"]:
        calls[f"{row['service']} {row['action']}"] += row["count"]
    return calls


def summary_line(run: dict[str, Any], message: str) -> dict[str, Any]:
    found = [entry for entry in run["logs"] if entry.get("message") == message]
    if len(found) != 1:
        raise SystemExit(f"{run['label']}: expected one '{message}' log line, got {found}\n{run['logs']}")
    return found[0]


def expect(label: str, what: str, got: Any, want: Any) -> None:
    if got != want:
        raise SystemExit(f"{label}: {what} is {got!r}, expected {want!r}")


# ---------------------------------------------------------------------------------------------
# Publish
# ---------------------------------------------------------------------------------------------


def seed_gateways(emulator: Emulator) -> set[str]:
    """17 x 100 tagged gateways (+ one mistagged per region). Returns the CIDRs to publish."""
    regions = common.REGIONS
    clients = {r: emulator.seed.ec2(r) for r in regions}  # boto3 clients: made in one thread
    subnets = {r: emulator.seed.network(r)[1] for r in regions}

    def seed_region(index_region: tuple[int, str]) -> list[str]:
        index, region = index_region
        ec2, cidrs = clients[region], []
        for i in range(GATEWAYS_PER_REGION):
            ip = f"198.18.{index}.{i + 1}"
            allocation = ec2.allocate_address(Domain="vpc", Address=ip)["AllocationId"]
            ec2.create_nat_gateway(
                SubnetId=subnets[region], AllocationId=allocation,
                TagSpecifications=[{"ResourceType": "natgateway",
                                    "Tags": [{"Key": "Name", "Value": f"egress-{region}-{i}"}]}],
            )
            cidrs.append(f"{ip}/32")
        allocation = ec2.allocate_address(Domain="vpc", Address=f"198.19.255.{index + 1}")["AllocationId"]
        ec2.create_nat_gateway(
            SubnetId=subnets[region], AllocationId=allocation,
            TagSpecifications=[{"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "database"}]}],
        )
        return cidrs

    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        results = list(pool.map(seed_region, enumerate(regions)))
    return {cidr for cidrs in results for cidr in cidrs}


def seed_outputs(emulator: Emulator) -> str:
    """The bucket, and a CloudFront distribution in front of it. Returns the distribution id."""
    emulator.client("s3", "us-east-1").create_bucket(Bucket=BUCKET)
    origin = {"Id": "s3", "DomainName": f"{BUCKET}.s3.amazonaws.com",
              "S3OriginConfig": {"OriginAccessIdentity": ""}}
    return emulator.client("cloudfront", "us-east-1").create_distribution(DistributionConfig={
        "CallerReference": f"bench-publisher-{os.urandom(4).hex()}", "Comment": "bench", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all"},
    })["Distribution"]["Id"]


def published(emulator: Emulator, key: str) -> tuple[str, bytes]:
    """(ETag, body) of the published object (boto3; call after reading the counters)."""
    got = emulator.client("s3", "us-east-1").get_object(Bucket=BUCKET, Key=key)
    return got["ETag"], got["Body"].read()


def check_document(label: str, body: bytes, want: set[str]) -> str:
    """The document holds exactly `want`; returns its syncToken."""
    doc = json.loads(body)
    prefixes = [p["ip_prefix"] for p in doc["prefixes"]]
    if len(prefixes) != len(want) or set(prefixes) != want:
        missing, extra = sorted(want - set(prefixes))[:5], sorted(set(prefixes) - want)[:5]
        raise SystemExit(f"{label}: document has {len(prefixes)} prefixes, expected {len(want)} "
                         f"(missing e.g. {missing}, unexpected e.g. {extra})")
    return doc["syncToken"]


def bench_publish(runner: Runner, emulator: Emulator, repeat: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    want = seed_gateways(emulator)
    distribution = seed_outputs(emulator)
    seed_s = time.perf_counter() - t0
    print(f"seeded {len(want)} tagged NAT gateways in {len(common.REGIONS)} regions in {seed_s:.1f}s",
          file=sys.stderr, flush=True)
    base = ["publish", "--tag", TAG, "--bucket", BUCKET, "--distribution-id", distribution]
    listed = ["--regions", ",".join(common.REGIONS)]
    n_regions = len(common.REGIONS)

    # What `--regions all` resolves to: the regions DescribeRegions lists as enabled (the emulator
    # enables more than the 17 of common.REGIONS; the extra ones hold no gateways).
    enabled = sorted(r["RegionName"] for r in emulator.client("ec2", "us-east-1").describe_regions()["Regions"])

    def checked(label: str, args: list[str], changed: bool, regions: int = n_regions) -> dict[str, Any]:
        run = runner.run(label, args)
        line = summary_line(run, "publish summary")
        expect(label, "summary regions", line.get("regions"), regions)
        expect(label, "summary prefixes", line.get("prefixes"), len(want))
        expect(label, "summary changed", line.get("changed"), changed)
        print(f"  {label}: {run['wall_s']:.2f}s, {run['rss_mib']:.1f} MiB, "
              f"{dict(sorted(run['calls'].items()))}", file=sys.stderr, flush=True)
        return run

    first = checked("first publish (write)", base + listed, changed=True)
    etag, body = published(emulator, KEY)
    sync_token = check_document("first publish", body, want)

    unchanged = []
    for i in range(repeat):
        run = checked(f"unchanged #{i + 1}", base + listed, changed=False)
        now_etag, now_body = published(emulator, KEY)
        expect(run["label"], "ETag after an unchanged publish", now_etag, etag)
        expect(run["label"], "syncToken", check_document(run["label"], now_body, want), sync_token)
        unchanged.append(run)

    all_regions = checked("unchanged, --regions all", base + ["--regions", "all"], changed=False,
                          regions=len(enabled))
    all_regions["enabled_regions"] = enabled
    expect("--regions all", "ETag", published(emulator, KEY)[0], etag)

    text_args = base + listed + ["--text-key", TEXT_KEY]
    text_first = checked("--text-key, first (writes the text list)", text_args, changed=False)
    text_etag, text_body = published(emulator, TEXT_KEY)
    expect("--text-key", "text list", sorted(text_body.decode().split()), sorted(want))
    text_unchanged = checked("--text-key, unchanged", text_args, changed=False)
    expect("--text-key unchanged", "text ETag", published(emulator, TEXT_KEY)[0], text_etag)
    expect("--text-key unchanged", "JSON ETag", published(emulator, KEY)[0], etag)

    return {
        "seed_s": seed_s, "gateways": len(want), "first": first, "unchanged": unchanged,
        "all_regions": all_regions, "text_first": text_first, "text_unchanged": text_unchanged,
    }


# ---------------------------------------------------------------------------------------------
# Sweep
# ---------------------------------------------------------------------------------------------


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_rules(emulator: Emulator, regions: list[str], groups_per_region: int) -> dict[str, Any]:
    """Per region: `groups_per_region` groups of 50 expired managed rules; survivors in the first
    group. Returns {region: {"groups": [...], "expired": {ids}, "survivors": {ids},
    "managed": n}}."""
    now = datetime.now(timezone.utc)
    past, future = rfc3339(now - timedelta(days=7)), rfc3339(now + timedelta(days=1))
    seeded: dict[str, Any] = {}
    for r_index, region in enumerate(regions):
        ec2 = emulator.seed.ec2(region)
        groups = [emulator.seed.security_group(region, f"bench-sweep-{g}") for g in range(groups_per_region)]
        expired: set[str] = set()
        survivors: set[str] = set()

        def authorize(group: str, port: int, cidrs: list[str], tags: dict[str, str] | None) -> set[str]:
            spec = [{"ResourceType": "security-group-rule",
                     "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
            rules = ec2.authorize_security_group_ingress(
                GroupId=group, TagSpecifications=spec,
                IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                                "IpRanges": [{"CidrIp": c} for c in cidrs]}],
            )["SecurityGroupRules"]
            if len(rules) != len(cidrs):
                raise SystemExit(f"seeding {group}: {len(rules)} rules created, expected {len(cidrs)}")
            return {rule["SecurityGroupRuleId"] for rule in rules}

        for g, group in enumerate(groups):
            grant = f"grant-{r_index:02d}{g:02d}{0:012x}"
            cidrs = [f"198.51.{g}.{i + 1}/32" for i in range(RULES_PER_GROUP)]
            expired |= authorize(group, 443, cidrs, {MANAGED_BY: MANAGED_BY_VALUE, GRANT_ID: grant,
                                                     EXPIRES_AT: past})
        first = groups[0]
        survivors |= authorize(first, 8443, ["203.0.113.1/32", "203.0.113.2/32"],
                               {MANAGED_BY: MANAGED_BY_VALUE, GRANT_ID: "grant-unexpired00000001",
                                EXPIRES_AT: future})
        survivors |= authorize(first, 8444, ["203.0.113.3/32"], None)
        survivors |= authorize(first, 8445, ["203.0.113.4/32"], {GRANT_ID: "grant-unmanaged0000001",
                                                                 EXPIRES_AT: past})
        survivors |= authorize(first, 8446, ["203.0.113.5/32"], {MANAGED_BY: "someone-else",
                                                                 EXPIRES_AT: past})
        seeded[region] = {"groups": groups, "expired": expired, "survivors": survivors,
                          "managed": len(expired) + 2}
    return seeded


def ingress_rule_ids(emulator: Emulator, region: str, groups: list[str]) -> set[str]:
    rules = emulator.seed.ec2(region).describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": groups}])["SecurityGroupRules"]
    return {r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]}


def bench_sweep(runner: Runner, emulator: Emulator, repeat: int) -> list[dict[str, Any]]:
    cases = []
    for name, regions, groups_per_region in SWEEP_CASES:
        runs = []
        for i in range(repeat):
            emulator.reset()
            t0 = time.perf_counter()
            seeded = seed_rules(emulator, regions, groups_per_region)
            seed_s = time.perf_counter() - t0
            for region, s in seeded.items():  # the seed itself, before the sweep
                have = ingress_rule_ids(emulator, region, s["groups"])
                expect(name, f"ingress rules seeded in {region}", have, s["expired"] | s["survivors"])
            # The emulator's own cost of the listing the sweep makes: the same filter from boto3,
            # sequentially, one region at a time (before the run, so not in its counters).
            t0 = time.perf_counter()
            for region in regions:
                emulator.seed.ec2(region).describe_security_group_rules(
                    Filters=[{"Name": f"tag:{MANAGED_BY}", "Values": [MANAGED_BY_VALUE]}], MaxResults=RULE_PAGE)
            probe_s = time.perf_counter() - t0
            label = f"sweep {name} #{i + 1}"
            run = runner.run(label, ["sweep", "--regions", ",".join(regions)])
            run["listing_probe_s"] = probe_s
            expired = sum(len(s["expired"]) for s in seeded.values())
            groups = len(regions) * groups_per_region
            line = summary_line(run, "sweep summary")
            for field, want in (("regions", len(regions)), ("expired", expired), ("revoked", expired),
                                ("groups", groups), ("failed", 0), ("dry_run", False)):
                expect(label, f"summary {field}", line.get(field), want)
            # After reading the counters: exactly the survivors remain, every expired rule is gone.
            for region, s in seeded.items():
                left = ingress_rule_ids(emulator, region, s["groups"])
                if left != s["survivors"]:
                    raise SystemExit(
                        f"{label}: {region} has {len(left)} ingress rules after the sweep, expected the "
                        f"{len(s['survivors'])} survivors; expired still there: "
                        f"{len(left & s['expired'])}, survivors gone: {len(s['survivors'] - left)}")
            run["seed_s"] = seed_s
            run["expired"] = expired
            run["groups"] = groups
            run["regions"] = len(regions)
            run["managed_per_region"] = {r: s["managed"] for r, s in seeded.items()}
            print(f"  {label}: {run['wall_s']:.2f}s, {run['rss_mib']:.1f} MiB, "
                  f"{dict(sorted(run['calls'].items()))} (seeded in {seed_s:.1f}s)", file=sys.stderr, flush=True)
            runs.append(run)
        cases.append({"case": name, "regions": regions, "groups_per_region": groups_per_region, "runs": runs})
    return cases


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def fmt_calls(samples: list[Counter]) -> str:
    """Median per call over the samples ("a-b" when they disagree), then the total."""
    keys = sorted(set().union(*samples))
    parts = []
    for key in keys:
        values = [s.get(key, 0) for s in samples]
        text = f"{key} {statistics.median(values):g}"
        if min(values) != max(values):
            text += f" ({min(values)}-{max(values)})"
        parts.append(text)
    totals = [sum(s.values()) for s in samples]
    parts.append(f"**total {statistics.median(totals):g}**")
    return "<br>".join(parts)


def row(case: str, runs: list[dict[str, Any]]) -> list[Any]:
    walls = [r["wall_s"] for r in runs]
    rss = [r["rss_mib"] for r in runs]
    requests = [sum(r["calls"].values()) for r in runs]
    emu_ms = [1000 * r["emulator_cpu_s"] / n for r, n in zip(runs, requests) if n]
    return [
        case, len(runs),
        f"{statistics.median(walls):.3f}", f"{min(walls):.3f}", f"{max(walls):.3f}",
        f"{statistics.median(rss):.1f}" + (f" (max {max(rss):.1f})" if len(rss) > 1 else ""),
        f"{statistics.median(r['cpu_s'] for r in runs):.3f}",
        f"{statistics.median(r['emulator_cpu_s'] for r in runs):.3f}",
        f"{statistics.median(emu_ms):.1f}" if emu_ms else "-",
        fmt_calls([r["calls"] for r in runs]),
    ]


def verdicts(pub: dict[str, Any], sweeps: list[dict[str, Any]]) -> tuple[list[str], bool]:
    lines, ok = [], True
    n = len(common.REGIONS)
    for run in pub["unchanged"]:
        c = run["calls"]
        writes = sum(v for k, v in c.items() if k.startswith("s3 ") and k != "s3 GET")
        cloudfront = sum(v for k, v in c.items() if k.startswith("cloudfront "))
        run["writes"], run["cloudfront"] = writes, cloudfront
        run["met"] = (c.get("ec2 DescribeNatGateways", 0) == n and c.get("s3 GET", 0) == 1
                      and writes == 0 and cloudfront == 0 and sum(c.values()) == n + 1)
    met = all(run["met"] for run in pub["unchanged"])
    ok &= met
    seen = sorted({sum(r["calls"].values()) for r in pub["unchanged"]})
    lines.append(
        f"- **publish unchanged = {n} lookups + 1 read, 0 writes: {'met' if met else 'NOT met'}** "
        f"(all {len(pub['unchanged'])} runs: {pub['unchanged'][0]['calls'].get('ec2 DescribeNatGateways', 0)} "
        f"DescribeNatGateways, {pub['unchanged'][0]['calls'].get('s3 GET', 0)} S3 GET, "
        f"{max(r['writes'] for r in pub['unchanged'])} S3 writes, "
        f"{max(r['cloudfront'] for r in pub['unchanged'])} CloudFront calls (maximum over the runs); "
        f"total calls per run {seen})."
    )
    a = pub["all_regions"]["calls"]
    extra = sorted(set(pub["all_regions"]["enabled_regions"]) - set(common.REGIONS))
    lines.append(
        f"- `--regions all` instead of the explicit list: {sum(a.values())} calls = "
        f"{a.get('ec2 DescribeRegions', 0)} DescribeRegions + {a.get('ec2 DescribeNatGateways', 0)} "
        f"DescribeNatGateways + {a.get('s3 GET', 0)} GET, 0 writes. The emulator lists "
        f"{len(pub['all_regions']['enabled_regions'])} regions as enabled, not {n}"
        f"{' (also ' + ', '.join(extra) + ', which hold no gateways)' if extra else ''}."
    )
    t = pub["text_unchanged"]["calls"]
    extra_get = t.get("s3 GET", 0) - pub["unchanged"][0]["calls"].get("s3 GET", 0)
    text_ok = extra_get == 1 and sum(v for k, v in t.items() if k.startswith(("s3 P", "cloudfront"))) == 0
    ok &= text_ok
    lines.append(
        f"- `--text-key`, unchanged: {t.get('s3 GET', 0)} S3 GETs, i.e. **{extra_get:+d} GET** and no write "
        f"({'as expected' if text_ok else 'NOT as expected'}); its first run (text object absent) made "
        f"{fmt_calls([pub['text_first']['calls']]).replace('<br>', ', ')}."
    )
    for case in sweeps:
        for_case = []
        for run in case["runs"]:
            c = run["calls"]
            extra_pages = sum(max(0, math.ceil(m / RULE_PAGE) - 1) for m in run["managed_per_region"].values())
            x = sum(c.values())
            y = run["regions"] + run["groups"] + extra_pages
            revokes = c.get("ec2 RevokeSecurityGroupIngress", 0)
            describes = c.get("ec2 DescribeSecurityGroupRules", 0)
            for_case.append((x, y, revokes, describes, extra_pages))
        met = all(x <= y and rv == case["runs"][0]["groups"] for x, y, rv, _, _ in for_case)
        ok &= met
        xs = sorted({f[0] for f in for_case})
        x, y, rv, ds, extra = for_case[0]
        lines.append(
            f"- **sweep {case['case']}: calls = {'/'.join(map(str, xs))} ≤ regions + groups (+ pagination) = "
            f"{len(case['regions'])} + {case['runs'][0]['groups']}"
            f"{f' + {extra}' if extra else ''} = {y}: {'met' if met else 'NOT met'}** "
            f"({ds} DescribeSecurityGroupRules, {rv} RevokeSecurityGroupIngress"
            f"{' = one per group' if rv == case['runs'][0]['groups'] else ' — NOT one per group'})."
        )
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="unchanged publish runs")
    parser.add_argument("--sweep-repeat", type=int, default=3, help="sweep runs per case (each re-seeded)")
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("ALLOWLIST_PUBLISHER", PUBLISHER)))
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (emulator log)")
    args = parser.parse_args()
    common.exit_on_signals()

    common.budget("bench/publisher.py", args.budget)
    binary = args.binary.resolve()
    common.require(binary, "cargo build --release -p allowlist-publisher")
    common.drop_aws_env()

    scratch = Path(tempfile.mkdtemp(prefix="bench-publisher-"))
    emulator: Emulator | None = None
    ok = False
    try:
        started = time.perf_counter()
        floor = wrapper_floor(scratch)
        emulator = Emulator.launch(str(common.PYTHON), scratch / "emulator.log")
        runner = Runner(binary, scratch, emulator)
        pub = bench_publish(runner, emulator, args.repeat)
        sweeps = bench_sweep(runner, emulator, args.sweep_repeat)
        total_s = time.perf_counter() - started
        ok = True
    finally:
        signal.alarm(0)
        if emulator is not None:
            emulator.stop()
        if ok and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"bench/publisher.py: scratch dir (emulator log) kept: {scratch}", file=sys.stderr)

    n = len(common.REGIONS)
    rows = [
        row("publish, first (write + invalidation)", [pub["first"]]),
        row(f"**publish, unchanged** ({n} regions listed)", pub["unchanged"]),
        row("publish, unchanged, `--regions all`", [pub["all_regions"]]),
        row("publish, `--text-key`, first (writes the text list)", [pub["text_first"]]),
        row("publish, `--text-key`, unchanged", [pub["text_unchanged"]]),
    ] + [row(f"**sweep, {c['case']}** (1,000 expired)", c["runs"]) for c in sweeps]
    lines, targets_met = verdicts(pub, sweeps)
    probes = "; ".join(
        f"{c['case']}: {statistics.median(r['listing_probe_s'] for r in c['runs']):.2f} s "
        f"({max(c['runs'][0]['managed_per_region'].values())} managed rules per region)"
        for c in sweeps
    )
    split = []
    for name, runs in [("publish unchanged", pub["unchanged"])] + [(f"sweep {c['case']}", c["runs"]) for c in sweeps]:
        wall = statistics.median(r["wall_s"] for r in runs)
        emu = statistics.median(r["emulator_cpu_s"] for r in runs)
        own = statistics.median(r["cpu_s"] for r in runs)
        split.append(f"{name}: emulator CPU {emu:.2f} s ({100 * emu / wall:.0f}% of the {wall:.2f} s wall), "
                     f"publisher CPU {own:.3f} s ({100 * own / wall:.0f}%)")
    try:
        rel = binary.relative_to(common.ROOT)
    except ValueError:
        rel = binary
    head = subprocess.run(["git", "-C", str(common.ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    built = binary.stat().st_mtime
    newer = sorted(str(f.relative_to(common.ROOT)) for d in ("publisher/src", "core/src")
                   for f in (common.ROOT / d).rglob("*.rs") if f.stat().st_mtime > built)
    built_at = datetime.fromtimestamp(built, timezone.utc).strftime("%Y-%m-%d %H:%MZ")
    freshness = (f"sources changed since the build: {', '.join(newer)}" if newer
                 else "no source in publisher/src or core/src is newer")
    markdown = (
        f"### allowlist-publisher: publish {n} regions x {GATEWAYS_PER_REGION} NAT gateways, "
        f"sweep 1,000 expired rules\n\n"
        f"Release build `{rel}` of {built_at} ({freshness}; git HEAD at run time {head or '?'}), "
        f"run {common.machine()['date']}, nproc "
        f"{os.cpu_count()}, load before {open('/proc/loadavg').read().split()[0]}. AWS: the test bed's "
        f"emulator (moto) on 127.0.0.1, calls counted by it per run. Seeding "
        f"{pub['gateways']} + {n} NAT gateways took {pub['seed_s']:.0f}s; whole benchmark "
        f"{total_s:.0f}s.\n\n"
        + common.md_table(
            ["case", "runs", "wall s (median)", "min", "max", "peak RSS MiB (median)",
             "publisher CPU s", "emulator CPU s", "emulator CPU ms / request", "AWS calls per run (median)"],
            rows,
        )
        + f"\nPeak RSS: the publisher process's `ru_maxrss` via bench/rss_wrapper.c (MiB = 1024 KiB; the "
          f"wrapper's floor, /bin/true, is {floor:.1f} MiB). Publisher CPU = its user + system time (rusage "
          f"from wait4); emulator CPU = the moto process's user + system time during the run. S3 and "
          f"CloudFront calls are counted by HTTP method (GET = GetObject, PUT = PutObject, cloudfront "
          f"POST = CreateInvalidation). Every run exited 0, and the results were checked (see "
          f"bench/README.md).\n\n"
        + "Targets:\n\n" + "\n".join(lines) + "\n\n"
        + "Where the wall time goes (medians): " + "; ".join(split) + ". moto answers in one Python "
          "process, serially (GIL), so the wall time is mostly the emulator's, not the publisher's; "
          "the rest is waiting for a CPU on a shared 2-core machine. The sweep's wall time is mostly "
          "moto answering its DescribeSecurityGroupRules (tag filter), whose cost grows faster than "
          "linearly with the rules in a region: the same listing asked from boto3 before each run, "
          f"all regions of the case one after another, took (median) {probes} (wall time, boto3's "
          "parsing included: an upper bound of moto's share). moto 5.2.5 ignores MaxResults "
          "on DescribeSecurityGroupRules, so the pagination allowance is computed (one more page per "
          f"{RULE_PAGE} managed rules in a region) but never used here.\n"
    )
    data = {
        "machine": common.machine(), "binary": str(binary), "wrapper_floor_mib": floor,
        "publish": {k: v for k, v in pub.items()}, "sweep": sweeps, "targets_met": targets_met,
    }
    common.write_results("publisher", json.loads(json.dumps(data, default=lambda o: sorted(o) if isinstance(o, set) else str(o))), markdown)
    return 0 if targets_met else 1


if __name__ == "__main__":
    sys.exit(main())

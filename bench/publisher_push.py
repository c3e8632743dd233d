"""Publisher push benchmark: AWS calls of `allowlist-publisher publish` with an SNS topic and two
managed prefix lists, against the same publish without them (issue 13's performance line: an
unchanged publish with SNS and two prefix lists costs at most one extra read per prefix list and
0 writes / publishes).

Against the test bed's emulator (testbed/emulator.py via `testbed.seed.Emulator`, on 127.0.0.1).
Seeded once: 2 regions (us-east-1, us-west-2) x 50 NAT gateways tagged `Name=egress-<region>-<i>`
(100 prefixes), a bucket, a CloudFront distribution, an SNS topic with an SQS queue subscribed, and
two IPv4 managed prefix lists (us-east-1 and eu-west-1, MaxEntries 120, empty). Then, each run one
`allowlist-publisher` process (request counters cleared before, read after):
  (a) first publish with `--sns-topic-arn --public-url --prefix-list us-east-1=pl-…,eu-west-1=pl-…`
      (writes the document, invalidates, syncs both lists, announces);
  (b) the same, unchanged, --repeat times: must make 0 writes (S3 PUT, CloudFront, SNS Publish,
      ModifyManagedPrefixList);
  (c) the same flags without SNS and prefix lists, unchanged, --repeat times: the baseline;
  (d) one more gateway, then (a)'s flags: the cost of a change with everything on.
Checked after the runs: the queue got exactly 2 messages (a, d), each list equals the published
set, and (b) differs from (c) by exactly one GetManagedPrefixListEntries per list.

    .venv/bin/python bench/publisher_push.py [--repeat 3] [--binary PATH]

Call counts do not depend on the build profile, so the debug build serves
(default target/debug/allowlist-publisher); wall times are reported but only call counts are
the result. Writes bench/results/publisher_push.{json,md}. Every publisher run is bounded
(publisher.RUN_TIMEOUT; its process group killed on timeout); the emulator is stopped on the way
out, also on failure or SIGTERM/SIGINT/SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common
from publisher import Runner, expect, fmt_calls, summary_line
from seed import Emulator  # testbed/seed.py

BINARY = common.ROOT / "target" / "debug" / "allowlist-publisher"
REGIONS = ["us-east-1", "us-west-2"]
GATEWAYS_PER_REGION = 50
LIST_REGIONS = ["us-east-1", "eu-west-1"]
BUCKET = "bench-push-ip-ranges"
TAG = "Name=egress-*"
WRITES = ("s3 PUT", "cloudfront POST", "sns Publish", "ec2 ModifyManagedPrefixList")


def seed(emulator: Emulator) -> dict[str, Any]:
    cidrs = set()
    for index, region in enumerate(REGIONS):
        for i in range(GATEWAYS_PER_REGION):
            ip = f"198.18.{index}.{i + 1}"
            emulator.seed.nat_gateway(region, {"Name": f"egress-{region}-{i}"}, ips=[ip])
            cidrs.add(f"{ip}/32")
    emulator.seed.bucket(BUCKET)
    distribution = emulator.seed.distribution(BUCKET)
    sns, sqs = emulator.client("sns", "us-east-1"), emulator.client("sqs", "us-east-1")
    topic = sns.create_topic(Name="bench-changes")["TopicArn"]
    queue = sqs.create_queue(QueueName="bench-changes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    lists = {
        region: emulator.client("ec2", region).create_managed_prefix_list(
            PrefixListName="bench-egress", AddressFamily="IPv4", MaxEntries=120)["PrefixList"]["PrefixListId"]
        for region in LIST_REGIONS
    }
    return {"cidrs": cidrs, "distribution": distribution, "topic": topic, "queue": queue, "lists": lists}


def messages(emulator: Emulator, queue: str) -> list[dict[str, Any]]:
    sqs, found = emulator.client("sqs", "us-east-1"), []
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        for message in got:
            found.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return found


def list_cidrs(emulator: Emulator, region: str, pl_id: str) -> set[str]:
    entries = emulator.client("ec2", region).get_managed_prefix_list_entries(PrefixListId=pl_id)["Entries"]
    return {e["Cidr"] for e in entries}


def writes(calls: Counter) -> int:
    return sum(calls.get(key, 0) for key in WRITES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="unchanged runs per case")
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("ALLOWLIST_PUBLISHER", BINARY)))
    args = parser.parse_args()
    common.exit_on_signals()
    binary = args.binary.resolve()
    common.require(binary, "cargo build --workspace --locked")
    common.drop_aws_env()

    scratch = Path(tempfile.mkdtemp(prefix="bench-publisher-push-"))
    emulator: Emulator | None = None
    try:
        emulator = Emulator.launch(str(common.PYTHON), scratch / "emulator.log")
        runner = Runner(binary, scratch, emulator)
        t0 = time.perf_counter()
        seeded = seed(emulator)
        print(f"seeded in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        lists = ",".join(f"{region}={pl}" for region, pl in seeded["lists"].items())
        base = ["publish", "--regions", ",".join(REGIONS), "--tag", TAG, "--bucket", BUCKET,
                "--distribution-id", seeded["distribution"]]
        push = base + ["--sns-topic-arn", seeded["topic"], "--public-url", "https://ips.example.com/ip-ranges.json",
                       "--prefix-list", lists]

        def run(label: str, argv: list[str], changed: bool) -> dict[str, Any]:
            result = runner.run(label, argv)
            expect(label, "summary changed", summary_line(result, "publish summary").get("changed"), changed)
            print(f"  {label}: {dict(sorted(result['calls'].items()))}", file=sys.stderr, flush=True)
            return result

        first = run("first publish, SNS + 2 prefix lists", push, changed=True)
        with_push = [run(f"unchanged, SNS + 2 prefix lists #{i + 1}", push, changed=False) for i in range(args.repeat)]
        baseline = [run(f"unchanged, neither #{i + 1}", base, changed=False) for i in range(args.repeat)]
        emulator.seed.nat_gateway("us-west-2", {"Name": "egress-us-west-2-extra"}, ips=["198.18.9.9"])
        change = run("one gateway more, SNS + 2 prefix lists", push, changed=True)
        want = seeded["cidrs"] | {"198.18.9.9/32"}

        got = messages(emulator, seeded["queue"])
        expect("the queue", "messages", len(got), 2)
        for region, pl in seeded["lists"].items():
            expect(f"prefix list {region}", "entries", list_cidrs(emulator, region, pl), want)
    finally:
        if emulator is not None:
            emulator.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    extra = [Counter(p["calls"]) - Counter(b["calls"]) for p, b in zip(with_push, baseline)]
    fewer = [Counter(b["calls"]) - Counter(p["calls"]) for p, b in zip(with_push, baseline)]
    n_lists = len(LIST_REGIONS)
    met = all(
        writes(p["calls"]) == 0 and sum(e.values()) <= n_lists and not f
        and e.get("ec2 GetManagedPrefixListEntries", 0) == n_lists
        for p, e, f in zip(with_push, extra, fewer)
    )
    rows = [
        ["first publish, SNS + 2 prefix lists (write, invalidate, sync, announce)", 1, fmt_calls([first["calls"]])],
        ["**unchanged, SNS + 2 prefix lists**", len(with_push), fmt_calls([r["calls"] for r in with_push])],
        ["unchanged, neither (baseline)", len(baseline), fmt_calls([r["calls"] for r in baseline])],
        ["one gateway more, SNS + 2 prefix lists", 1, fmt_calls([change["calls"]])],
    ]
    markdown = (
        f"### allowlist-publisher publish with SNS and two prefix lists: AWS calls per run\n\n"
        f"Debug build `{binary.name}`, run {common.machine()['date']}. {len(REGIONS)} regions x "
        f"{GATEWAYS_PER_REGION} NAT gateways (100 prefixes), a CloudFront distribution, an SNS topic "
        f"with an SQS subscriber, IPv4 prefix lists in {' and '.join(LIST_REGIONS)}. Calls counted by "
        f"the emulator per run (S3 and CloudFront by HTTP method).\n\n"
        + common.md_table(["case", "runs", "AWS calls per run (median)"], rows)
        + f"\n- **Unchanged with SNS and 2 prefix lists vs without: "
          f"{'; '.join(dict(e) and ', '.join(f'+{v} {k}' for k, v in sorted(e.items())) or 'no difference' for e in extra[:1])}"
          f", 0 writes or publishes: {'met' if met else 'NOT met'}** (target: at most one extra read per "
          f"prefix list, 0 writes/publishes).\n"
        f"- The queue received exactly 2 messages (the first publish and the change), and both lists "
          f"equal the published set afterwards.\n"
    )
    data = {"first": first, "unchanged_push": with_push, "unchanged_baseline": baseline, "change": change,
            "met": met}
    common.write_results("publisher_push", json.loads(json.dumps(data, default=str)), markdown)
    print(markdown)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

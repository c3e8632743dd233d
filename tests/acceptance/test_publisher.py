"""Acceptance tests for `allowlist-publisher` (publisher/README.md is the contract).

Each test runs the real binary (the `publisher` fixture) against the patched
moto emulator the way an operator would: seed NAT gateways, buckets, security
groups and their rules with boto3, run ``publish`` / ``sweep`` / ``run``, then
ask the emulator what really happened: the objects and their headers, the
rules that remain, and how many calls of each kind were made (S3 and
CloudFront calls are counted by HTTP method). The published document is also
read back with the real `awsipranges` package, as a consumer of AWS's own
``ip-ranges.json`` would read it.

This module owns the publisher's behaviour as seen from outside: documents and
their headers, write-only-on-change, the guards and exit codes, conditional
writes, local output, environment configuration, the sweep, the long-running
loop, flag validation, and one end-to-end check with a Terraform-made grant.
"""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import json
import math
import re
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import awsipranges
import awsipranges.data_loading
import pytest

from conftest import config

HOME = "us-east-1"  # AWS_REGION of every publisher run: the bucket's region
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]
SWEEP_REGIONS = ["us-east-1", "us-west-2"]
BUCKET = "egress-ip-ranges"
KEY = "ip-ranges.json"  # the documented default of --key
TEXT_KEY = "ip-ranges.txt"
TAG = "Name=*egress*"
DOC_KEYS = {"syncToken", "createDate", "prefixes", "ipv6_prefixes"}
LONG_AGO = "2020-01-01T00:00:00Z"


# --------------------------------------------------------------------------
# Helpers: arguments, output parsing, the emulator's view.
# --------------------------------------------------------------------------


def publish_args(*extra: str, regions: list[str] = REGIONS, bucket: str | None = BUCKET) -> list[str]:
    """``publish --regions ... --tag Name=*egress* [--bucket B] EXTRA``."""
    args = ["publish", "--regions", ",".join(regions), "--tag", TAG]
    if bucket is not None:
        args += ["--bucket", bucket]
    return args + list(extra)


def sweep_args(*extra: str, regions: list[str] = SWEEP_REGIONS) -> list[str]:
    return ["sweep", "--regions", ",".join(regions), *extra]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def summaries(stderr: str, kind: str) -> list[dict[str, str]]:
    """The ``<kind> summary k=v ...`` lines of a run's stderr, as dicts of strings."""
    found = []
    for line in ANSI.sub("", stderr).splitlines():
        match = re.search(rf"\b{kind} summary\b(.*)", line)
        if match:
            pairs = re.findall(r'([a-z_]+)=("[^"]*"|\S+)', match.group(1))
            found.append({k: v.strip('"') for k, v in pairs})
    return found


def summary(result: Any, kind: str) -> dict[str, str]:
    """The one ``<kind> summary`` line a one-shot run prints."""
    found = summaries(result.stderr, kind)
    assert len(found) == 1, f"expected one '{kind} summary' line on stderr:\n{result.stderr}"
    return found[0]


def create_date_epoch(doc: dict[str, Any]) -> int:
    """``createDate`` (``YYYY-MM-DD-hh-mm-ss``, UTC, as AWS writes it) as Unix time."""
    return calendar.timegm(time.strptime(doc["createDate"], "%Y-%m-%d-%H-%M-%S"))


def by_address(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(prefix)


def expected_prefixes(ips_by_region: dict[str, list[str]], service: str = "EGRESS") -> list[dict[str, str]]:
    """The ``prefixes`` entries for these IPs: /32 each, ordered by address."""
    entries = [
        {"ip_prefix": f"{ip}/32", "region": region, "service": service, "network_border_group": region}
        for region, ips in ips_by_region.items()
        for ip in ips
    ]
    return sorted(entries, key=lambda e: by_address(e["ip_prefix"]))


def cidrs(doc: dict[str, Any]) -> list[str]:
    return [p["ip_prefix"] for p in doc["prefixes"]]


def ip_ranges_document(ips_by_region: dict[str, list[str]], sync_token: int) -> dict[str, Any]:
    """A valid document as another writer might publish it."""
    return {
        "syncToken": str(sync_token),
        "createDate": time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(sync_token)),
        "prefixes": expected_prefixes(ips_by_region),
        "ipv6_prefixes": [],
    }


@dataclass
class S3Object:
    """One object as the emulator holds it."""

    body: bytes
    etag: str
    content_type: str
    cache_control: str | None

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


def read_object(emulator, key: str = KEY, bucket: str = BUCKET) -> S3Object:
    got = emulator.client("s3", HOME).get_object(Bucket=bucket, Key=key)
    return S3Object(got["Body"].read(), got["ETag"], got.get("ContentType", ""), got.get("CacheControl"))


def put_object(emulator, body: bytes, key: str = KEY, content_type: str = "application/json") -> None:
    """Write the object as someone other than the publisher would."""
    emulator.client("s3", HOME).put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)


def assert_untouched(emulator, before: S3Object, key: str = KEY) -> None:
    """The object is byte for byte what it was (same ETag too)."""
    now = read_object(emulator, key)
    assert now.body == before.body
    assert now.etag == before.etag


def s3_puts(emulator) -> int:
    return emulator.count(service="s3", action="PUT")


def invalidation_paths(emulator, distribution_id: str) -> list[list[str]]:
    """The paths of every invalidation of the distribution, oldest first."""
    cloudfront = emulator.client("cloudfront", HOME)
    items = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items", [])
    batches = []
    for item in sorted(items, key=lambda i: i["CreateTime"]):
        batch = cloudfront.get_invalidation(DistributionId=distribution_id, Id=item["Id"])
        batches.append(batch["Invalidation"]["InvalidationBatch"]["Paths"].get("Items", []))
    return batches


def ingress_rule_ids(emulator, region: str) -> set[str]:
    """Ids of every inbound rule in the region."""
    rules = emulator.client("ec2", region).describe_security_group_rules()["SecurityGroupRules"]
    return {r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]}


def rule_ids_of_group(emulator, region: str, group_id: str) -> set[str]:
    ec2 = emulator.client("ec2", region)
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return {r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if not r["IsEgress"]}


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, process=None, interval: float = 0.1) -> Any:
    """Poll `predicate` until it is truthy (returned) or `timeout` seconds pass
    (the test fails). With `process`, its early exit fails the test at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"waiting for {what}: the publisher exited with {process.poll()}\n{process.stderr()}"
            )
        if time.monotonic() > deadline:
            tail = f"\n--- publisher stderr ---\n{process.stderr()}" if process is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
        time.sleep(interval)


@contextmanager
def dead_endpoint() -> Iterator[str]:
    """A loopback URL that refuses connections (a bound socket that never listens)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def seed_egress(emulator) -> dict[str, list[str]]:
    """Tagged, untagged, other-named and deleted gateways in the three regions,
    plus one in a region nobody asks about. Returns the IPs to publish."""
    seed = emulator.seed
    want = {
        # One gateway with two addresses; .9 before .10 checks numeric order.
        "us-east-1": ["198.18.0.10", "198.18.0.9"],
        "us-west-2": ["198.18.1.1"],
        # Between us-east-1's addresses: the list is ordered by address, not region.
        "eu-west-1": ["198.18.0.20"],
    }
    seed.nat_gateway("us-east-1", {"Name": "egress-a", "env": "prod"}, ips=want["us-east-1"])
    seed.nat_gateway("us-east-1", {}, ips=["203.0.113.1"])
    seed.nat_gateway("us-west-2", {"Name": "prod-egress"}, ips=want["us-west-2"])
    seed.nat_gateway("us-west-2", {"Name": "database"}, ips=["203.0.113.2"])
    seed.nat_gateway("eu-west-1", {"Name": "egress-eu"}, ips=want["eu-west-1"])
    seed.nat_gateway("eu-west-1", {"Name": "egress-old"}, ips=["203.0.113.3"], state="deleted")
    seed.nat_gateway("ap-southeast-2", {"Name": "egress-not-asked"}, ips=["203.0.113.4"])
    return want


@dataclass
class SeededRule:
    region: str
    group: str
    cidr: str
    port: int
    expires_at: str
    grant_id: str


def seed_sweep(emulator) -> dict[str, Any]:
    """Three groups in two regions holding expired and live managed rules, and
    rules the sweep must never touch. Returns the rule ids by fate."""
    seed = emulator.seed
    now = datetime.now(timezone.utc)
    past = seed.rfc3339(now - timedelta(hours=1))
    future = seed.rfc3339(now + timedelta(hours=6))
    east_a = seed.security_group("us-east-1", "bastion")
    east_b = seed.security_group("us-east-1", "web")
    west = seed.security_group("us-west-2", "bastion")
    expired: dict[str, SeededRule] = {}

    def managed(region: str, group: str, cidr: str, port: int, expires: str, grant: str) -> str:
        rule_id = seed.managed_rule(region, group, cidr, port, expires, grant_id=grant)
        if expires != future:
            expired[rule_id] = SeededRule(region, group, cidr, port, expires, grant)
        return rule_id

    # Expired grants: three rules in one us-east-1 group, two in the us-west-2 group.
    managed("us-east-1", east_a, "198.51.100.1/32", 22, past, "grant-00000000000000a1")
    managed("us-east-1", east_a, "198.51.100.1/32", 443, past, "grant-00000000000000a1")
    managed("us-east-1", east_a, "2001:db8::1/128", 22, LONG_AGO, "grant-00000000000000a2")
    managed("us-west-2", west, "198.51.100.2/32", 22, past, "grant-00000000000000a3")
    managed("us-west-2", west, "198.51.100.3/32", 22, past, "grant-00000000000000a3")
    kept = {
        # Live grants, one beside the expired rules in the same group.
        managed("us-east-1", east_a, "198.51.100.1/32", 8443, future, "grant-00000000000000b1"),
        managed("us-east-1", east_b, "198.51.100.5/32", 22, future, "grant-00000000000000b2"),
        managed("us-west-2", west, "198.51.100.6/32", 443, future, "grant-00000000000000b3"),
        # Hand-made, untagged, the same shape as an expired rule.
        seed.ingress_rule("us-east-1", east_b, "198.51.100.1/32", 22),
        # An expiry in the past but not our managed-by tag.
        seed.ingress_rule("us-east-1", east_b, "198.51.100.7/32", 3389, {
            "allowlist:expires-at": LONG_AGO, "allowlist:grant-id": "grant-00000000000000c1",
        }),
        # Managed by someone else.
        seed.ingress_rule("us-west-2", west, "198.51.100.9/32", 22, {
            "allowlist:managed-by": "terraform", "allowlist:expires-at": LONG_AGO,
        }),
    }
    return {"expired": expired, "kept": kept, "groups": {"east_a": east_a, "east_b": east_b, "west": west}}


def assert_swept(emulator, seeded: dict[str, Any]) -> None:
    """Exactly the expired managed rules are gone; every other rule remains."""
    remaining = ingress_rule_ids(emulator, "us-east-1") | ingress_rule_ids(emulator, "us-west-2")
    assert remaining.isdisjoint(seeded["expired"]), "expired managed rules remain"
    assert seeded["kept"] <= remaining, f"lost rules: {seeded['kept'] - remaining}"


# --------------------------------------------------------------------------
# publish
# --------------------------------------------------------------------------


def test_publish_to_s3(publisher, emulator, monkeypatch):
    want = seed_egress(emulator)
    emulator.seed.bucket(BUCKET)
    emulator.clear_requests()

    # Publish the JSON document (default key) and the text list.
    result = publisher.run(*publish_args("--text-key", TEXT_KEY))
    assert result.rc == 0, result.stderr
    assert result.stdout == "", "stdout carries only documents asked for with '-'"
    s = summary(result, "publish")
    assert (s["regions"], s["prefixes"], s["changed"]) == ("3", "4", "true"), s

    # The JSON object: its headers, then AWS's schema holding exactly the tagged IPs.
    obj = read_object(emulator)
    assert obj.content_type == "application/json"
    assert obj.cache_control == "public, max-age=300"
    doc = obj.document
    assert DOC_KEYS <= set(doc)
    assert re.fullmatch(r"[0-9]+", doc["syncToken"]), doc["syncToken"]
    assert abs(int(doc["syncToken"]) - time.time()) < 600, "syncToken is the Unix time of the change"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", doc["createDate"])
    assert create_date_epoch(doc) == int(doc["syncToken"])
    assert s["sync_token"] == doc["syncToken"]
    assert doc["prefixes"] == expected_prefixes(want)
    assert doc["ipv6_prefixes"] == []

    # The text object: one CIDR per line, in the same order, newline-terminated.
    text = read_object(emulator, TEXT_KEY)
    assert text.content_type.startswith("text/plain"), text.content_type
    assert text.cache_control == "public, max-age=300"
    assert text.body.decode() == "".join(c + "\n" for c in cidrs(doc))

    # Exactly the asked regions were looked in.
    asked = {r["region"] for r in emulator.requests()["requests"] if r["action"] == "DescribeNatGateways"}
    assert asked == set(REGIONS)

    # A consumer's library reads it as it reads AWS's own ip-ranges.json.
    url = emulator.client("s3", HOME).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=300
    )
    monkeypatch.setattr(awsipranges.data_loading, "AWS_IP_ADDRESS_RANGES_URL", url)
    ranges = awsipranges.get_ranges()
    assert ranges.sync_token == doc["syncToken"]
    assert ranges.create_date == datetime.fromtimestamp(int(doc["syncToken"]), timezone.utc)
    assert ranges.md5 == hashlib.md5(obj.body).hexdigest()
    assert sorted((str(p.prefix), p.region, p.network_border_group, p.services) for p in ranges) == sorted(
        (e["ip_prefix"], e["region"], e["region"], ("EGRESS",)) for e in expected_prefixes(want)
    )
    assert ranges.regions == frozenset(REGIONS)
    assert ranges.services == frozenset({"EGRESS"})
    assert "198.18.0.9" in ranges and "203.0.113.1" not in ranges
    assert ranges["198.18.1.1"].region == "us-west-2"
    assert ranges.ipv6_prefixes == ()


def test_publish_writes_only_on_change(publisher, emulator):
    seed = emulator.seed
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.1"])
    seed.nat_gateway("us-west-2", {"Name": "egress-b"}, ips=["198.18.0.2"])
    seed.bucket(BUCKET)
    distribution = seed.distribution(BUCKET)
    args = publish_args("--text-key", TEXT_KEY, regions=["us-east-1", "us-west-2"])

    # First publish (without the distribution).
    assert publisher.run(*args).rc == 0
    before = read_object(emulator)
    text_before = read_object(emulator, TEXT_KEY)
    token = before.document["syncToken"]

    # Nothing changed: no write, same token, no invalidation.
    emulator.clear_requests()
    again = publisher.run(*args, "--distribution-id", distribution)
    assert again.rc == 0, again.stderr
    s = summary(again, "publish")
    assert (s["changed"], s["sync_token"], s["prefixes"]) == ("false", token, "2"), s
    assert s3_puts(emulator) == 0
    assert emulator.count(service="cloudfront") == 0
    assert invalidation_paths(emulator, distribution) == []
    assert_untouched(emulator, before)
    assert_untouched(emulator, text_before, TEXT_KEY)

    # A new tagged gateway: both objects rewritten, a later token, one invalidation of both paths.
    seed.nat_gateway("us-west-2", {"Name": "egress-c"}, ips=["198.18.5.5"])
    emulator.clear_requests()
    changed = publisher.run(*args, "--distribution-id", distribution)
    assert changed.rc == 0, changed.stderr
    s = summary(changed, "publish")
    assert (s["changed"], s["prefixes"]) == ("true", "3"), s
    after = read_object(emulator).document
    assert int(after["syncToken"]) > int(token), "syncToken always grows, even within the same second"
    assert s["sync_token"] == after["syncToken"]
    assert create_date_epoch(after) == int(after["syncToken"])
    assert cidrs(after) == ["198.18.0.1/32", "198.18.0.2/32", "198.18.5.5/32"]
    assert read_object(emulator, TEXT_KEY).body == b"198.18.0.1/32\n198.18.0.2/32\n198.18.5.5/32\n"
    # JSON (recording the invalidation it owes), text, then the JSON's record cleared once the
    # invalidation is done (the same bytes: see "pending work" in publisher/README.md).
    assert s3_puts(emulator) == 3
    assert "allowlist-pending" not in emulator.client("s3", HOME).head_object(Bucket=BUCKET, Key=KEY)["Metadata"]
    batches = invalidation_paths(emulator, distribution)
    assert len(batches) == 1, batches
    assert {"/ip-ranges.json", "/ip-ranges.txt"} <= set(batches[0])


def test_publish_all_regions_by_default(publisher, emulator):
    emulator.seed.nat_gateway("sa-east-1", {"Name": "egress"}, ips=["198.18.9.1"])
    emulator.seed.nat_gateway("ap-northeast-1", {"Name": "egress"}, ips=["198.18.9.2"])

    # No --regions: every region enabled for the account.
    result = publisher.run("publish", "--tag", TAG, "--out", "-")
    assert result.rc == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["prefixes"] == expected_prefixes({"sa-east-1": ["198.18.9.1"], "ap-northeast-1": ["198.18.9.2"]})
    enabled = {r["RegionName"] for r in emulator.client("ec2", HOME).describe_regions()["Regions"]}
    asked = {r["region"] for r in emulator.requests()["requests"] if r["action"] == "DescribeNatGateways"}
    assert len(enabled) > 10
    assert asked == enabled


def test_publish_refuses_when_a_region_fails(publisher, emulator):
    want = seed_egress(emulator)
    emulator.seed.bucket(BUCKET)
    assert publisher.run(*publish_args()).rc == 0
    before = read_object(emulator)
    assert len(before.document["prefixes"]) == sum(len(v) for v in want.values())

    # A change to publish, but eu-west-1 now refuses DescribeNatGateways.
    emulator.seed.nat_gateway("us-west-2", {"Name": "egress-new"}, ips=["198.18.4.4"])
    emulator.set_faults([{
        "region": "eu-west-1", "action": "DescribeNatGateways", "mode": "error",
        "status": 403, "code": "UnauthorizedOperation", "message": "You are not authorized to perform this operation.",
    }])
    emulator.clear_requests()

    # Refused, naming the region and the code; --force does not override a failed region.
    for extra in ([], ["--force"]):
        result = publisher.run(*publish_args(*extra))
        assert result.rc == 3, (extra, result.stderr)
        assert "eu-west-1" in result.stderr and "UnauthorizedOperation" in result.stderr, result.stderr
        assert_untouched(emulator, before)
    assert s3_puts(emulator) == 0
    assert emulator.count(region="eu-west-1", action="DescribeNatGateways") >= 2


def test_publish_min_count(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    args = publish_args(regions=["us-east-1"])

    # Nothing tagged at all: the default --min-count 1 refuses an empty list; no object is created.
    seed.nat_gateway("us-east-1", {"Name": "database"}, ips=["203.0.113.9"])
    empty = publisher.run(*args)
    assert empty.rc == 3, empty.stderr
    assert emulator.client("s3", HOME).list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0

    # Two addresses published.
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.1", "198.18.0.2"])
    assert publisher.run(*args).rc == 0
    before = read_object(emulator)

    # A third appears, but --min-count 4 refuses: nothing written.
    seed.nat_gateway("us-east-1", {"Name": "egress-b"}, ips=["198.18.0.3"])
    emulator.clear_requests()
    refused = publisher.run(*args, "--min-count", "4")
    assert refused.rc == 3, refused.stderr
    assert "--min-count 4" in refused.stderr, refused.stderr
    assert_untouched(emulator, before)
    assert s3_puts(emulator) == 0

    # Exactly the minimum is enough.
    ok = publisher.run(*args, "--min-count", "3")
    assert ok.rc == 0, ok.stderr
    assert cidrs(read_object(emulator).document) == ["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"]


def test_publish_max_shrink(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    ids = [
        seed.nat_gateway(region, {"Name": f"egress-{n}"}, ips=[f"198.18.0.{n}"])
        for n, region in enumerate(["us-east-1", "us-east-1", "us-west-2", "us-west-2", "us-west-2"], start=1)
    ]
    args = publish_args(regions=["us-east-1", "us-west-2"])
    assert publisher.run(*args).rc == 0
    original = read_object(emulator)
    assert len(original.document["prefixes"]) == 5

    # Three of five go away (60%): two gateways deleted, one untagged.
    seed.delete_nat_gateway("us-east-1", ids[0])
    seed.delete_nat_gateway("us-west-2", ids[2])
    emulator.client("ec2", "us-west-2").delete_tags(Resources=[ids[3]], Tags=[{"Key": "Name"}])
    remaining = ["198.18.0.2/32", "198.18.0.5/32"]

    # Refused with the default --max-shrink 50, and with 59.
    emulator.clear_requests()
    for extra in ([], ["--max-shrink", "59"]):
        refused = publisher.run(*args, *extra)
        assert refused.rc == 3, (extra, refused.stderr)
        assert "--max-shrink" in refused.stderr, refused.stderr
        assert_untouched(emulator, original)
    assert s3_puts(emulator) == 0

    # Each of these publishes the shorter list: --force, --max-shrink 70, and 60
    # (a loss of exactly 60% is not more than 60%).
    for extra in (["--force"], ["--max-shrink", "70"], ["--max-shrink", "60"]):
        put_object(emulator, original.body)  # the five-address document is the baseline again
        result = publisher.run(*args, *extra)
        assert result.rc == 0, (extra, result.stderr)
        assert cidrs(read_object(emulator).document) == remaining, extra


@pytest.mark.parametrize(
    "garbage",
    [b"<html><body>Access denied</body></html>", b'{"hello": "world"}'],
    ids=["not-json", "json-not-ip-ranges"],
)
def test_publish_unreadable_published_document(publisher, emulator, garbage):
    emulator.seed.nat_gateway("us-east-1", {"Name": "egress"}, ips=["198.18.0.1"])
    emulator.seed.bucket(BUCKET)
    put_object(emulator, garbage, content_type="text/html")
    before = read_object(emulator)
    emulator.clear_requests()
    args = publish_args(regions=["us-east-1"])

    # Refused: someone else's object is not replaced blindly.
    refused = publisher.run(*args)
    assert refused.rc == 3, refused.stderr
    assert f"s3://{BUCKET}/{KEY}" in refused.stderr, "the message names the object"
    assert_untouched(emulator, before)
    assert s3_puts(emulator) == 0

    # --force replaces it with a real document.
    forced = publisher.run(*args, "--force")
    assert forced.rc == 0, forced.stderr
    published = read_object(emulator)
    assert published.content_type == "application/json"
    assert published.document["prefixes"] == expected_prefixes({"us-east-1": ["198.18.0.1"]})


def test_publish_concurrent_writer_no_lost_update(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.1"])
    seed.nat_gateway("us-west-2", {"Name": "egress-b"}, ips=["198.18.0.2"])
    args = publish_args(regions=["us-east-1", "us-west-2"])
    assert publisher.run(*args).rc == 0
    first = read_object(emulator).document

    # A change to publish, and another writer's valid document to race with
    # (a third address instead of ours, a later token).
    seed.nat_gateway("us-west-2", {"Name": "egress-c"}, ips=["198.18.0.3"])
    theirs = ip_ranges_document(
        {"us-east-1": ["198.18.0.1"], "us-west-2": ["198.18.0.2", "203.0.113.50"]}, int(first["syncToken"]) + 1
    )

    # The emulator holds the publisher's PUT for 1.5 s; meanwhile the other writer writes.
    emulator.clear_requests()
    emulator.set_faults([{"mode": "delay", "service": "s3", "action": "PUT", "delay_ms": 1500, "times": 1}])
    process = publisher.start(*args)
    wait_until("the publisher's PUT", lambda: s3_puts(emulator) >= 1, timeout=60, process=process, interval=0.02)
    put_object(emulator, json.dumps(theirs).encode())
    result = process.wait(timeout=60)

    # The conditional PUT failed (412), the publisher re-read and wrote its own document.
    assert result.rc == 0, result.stderr
    final = read_object(emulator).document
    assert cidrs(final) == ["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"]
    assert int(final["syncToken"]) > int(theirs["syncToken"])
    assert s3_puts(emulator) == 3, "the publisher's two PUTs and the other writer's"
    assert emulator.count(service="s3", action="GET") >= 2, "the object was read again after the conflict"
    # The log says so: the 412 (PreconditionFailed) on the object, and a second attempt.
    conflict = [line for line in result.stderr.splitlines() if "PreconditionFailed" in line]
    assert len(conflict) == 1 and f"s3://{BUCKET}/{KEY}" in conflict[0], result.stderr
    s = summary(result, "publish")
    assert (s["changed"], s.get("attempts")) == ("true", "2"), s


def test_publish_to_a_local_file(publisher, emulator, tmp_path):
    seed = emulator.seed
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.1"])
    seed.nat_gateway("us-west-2", {"Name": "egress-b"}, ips=["198.18.0.2"])
    out = tmp_path / "ip-ranges.json"
    text_out = tmp_path / "ip-ranges.txt"
    args = publish_args(regions=["us-east-1", "us-west-2"], bucket=None)
    want = {"us-east-1": ["198.18.0.1"], "us-west-2": ["198.18.0.2"]}

    # --out FILE (and --text-out FILE): the document is written locally, nothing on stdout.
    first = publisher.run(*args, "--out", str(out), "--text-out", str(text_out))
    assert first.rc == 0, first.stderr
    assert first.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["prefixes"] == expected_prefixes(want)
    assert create_date_epoch(doc) == int(doc["syncToken"])
    assert text_out.read_text() == "198.18.0.1/32\n198.18.0.2/32\n"
    written = out.read_bytes()

    # Again with no change: the file (and its syncToken) stays as it was.
    again = publisher.run(*args, "--out", str(out))
    assert again.rc == 0, again.stderr
    assert summary(again, "publish")["changed"] == "false"
    assert out.read_bytes() == written

    # A change: the file gets the new prefix and a later token.
    seed.nat_gateway("us-west-2", {"Name": "egress-c"}, ips=["198.18.0.3"])
    changed = publisher.run(*args, "--out", str(out))
    assert changed.rc == 0, changed.stderr
    newer = json.loads(out.read_text())
    assert cidrs(newer) == ["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"]
    assert int(newer["syncToken"]) > int(doc["syncToken"])

    # --out -: stdout is exactly the document.
    to_stdout = publisher.run(*args, "--out", "-")
    assert to_stdout.rc == 0, to_stdout.stderr
    assert json.loads(to_stdout.stdout)["prefixes"] == newer["prefixes"]
    assert to_stdout.stdout.lstrip().startswith("{") and to_stdout.stdout.rstrip().endswith("}")

    # --text-out -: stdout is exactly the text list.
    text = publisher.run(*args, "--out", str(out), "--text-out", "-")
    assert text.rc == 0, text.stderr
    assert text.stdout == "198.18.0.1/32\n198.18.0.2/32\n198.18.0.3/32\n"

    # A failed region writes no file either.
    missing = tmp_path / "never.json"
    emulator.set_faults([{"region": "us-west-2", "action": "DescribeNatGateways", "mode": "error",
                          "status": 403, "code": "UnauthorizedOperation"}])
    failed = publisher.run(*args, "--out", str(missing))
    assert failed.rc == 3, failed.stderr
    assert not missing.exists()

    # None of this touched S3.
    assert emulator.count(service="s3") == 0


def test_publish_preview_with_bucket_and_out(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.1"])
    args = publish_args(regions=["us-east-1"])
    assert publisher.run(*args).rc == 0
    before = read_object(emulator)
    emulator.clear_requests()

    # Unchanged: the preview is the published document, same syncToken.
    same = publisher.run(*args, "--out", "-")
    assert same.rc == 0, same.stderr
    assert json.loads(same.stdout)["syncToken"] == before.document["syncToken"]
    assert json.loads(same.stdout)["prefixes"] == before.document["prefixes"]

    # Changed: the preview shows the new list; S3 keeps the old one.
    seed.nat_gateway("us-east-1", {"Name": "egress-b"}, ips=["198.18.0.2"])
    preview = publisher.run(*args, "--out", "-")
    assert preview.rc == 0, preview.stderr
    doc = json.loads(preview.stdout)
    assert cidrs(doc) == ["198.18.0.1/32", "198.18.0.2/32"]
    assert int(doc["syncToken"]) > int(before.document["syncToken"])
    assert_untouched(emulator, before)
    assert s3_puts(emulator) == 0


def test_publish_missing_bucket_is_an_error(publisher, emulator):
    emulator.seed.nat_gateway("us-east-1", {"Name": "egress"}, ips=["198.18.0.1"])
    result = publisher.run(*publish_args(regions=["us-east-1"], bucket="no-such-bucket"))
    assert result.rc == 1, result.stderr
    assert "NoSuchBucket" in result.stderr, result.stderr
    assert s3_puts(emulator) == 0


def test_publish_configured_by_environment(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    distribution = seed.distribution(BUCKET)
    a = seed.nat_gateway("us-east-1", {"Name": "egress-a", "team": "net"}, ips=["198.18.0.1"])
    b = seed.nat_gateway("us-west-2", {"Name": "egress-b", "team": "net"}, ips=["198.18.0.2"])
    c = seed.nat_gateway("us-west-2", {"Name": "egress-c"}, ips=["198.18.0.3"])  # no team tag
    seed.nat_gateway("us-west-2", {"Name": "egress-d", "team": "net"}, ips=["198.18.0.4"])  # not in the id filter
    vpcs = [seed.network(r)[0] for r in ("us-east-1", "us-west-2")]
    env = {
        "ALLOWLIST_REGIONS": "us-east-1,us-west-2",
        "ALLOWLIST_TAGS": "Name=egress-*,team=net",
        "ALLOWLIST_FILTERS": f"vpc-id={vpcs[0]},{vpcs[1]};nat-gateway-id={a},{b},{c}",
        "ALLOWLIST_BUCKET": BUCKET,
        "ALLOWLIST_KEY": "egress/ranges.json",
        "ALLOWLIST_TEXT_KEY": "egress/ranges.txt",
        "ALLOWLIST_CACHE_CONTROL": "no-cache",
        "ALLOWLIST_SERVICE": "NAT",
        "ALLOWLIST_DISTRIBUTION_ID": distribution,
    }

    # Everything comes from the environment: no flag but the command.
    result = publisher.run("publish", env=env)
    assert result.rc == 0, result.stderr
    obj = read_object(emulator, "egress/ranges.json")
    assert obj.cache_control == "no-cache"
    assert obj.document["prefixes"] == expected_prefixes(
        {"us-east-1": ["198.18.0.1"], "us-west-2": ["198.18.0.2"]}, service="NAT"
    )
    assert read_object(emulator, "egress/ranges.txt").body == b"198.18.0.1/32\n198.18.0.2/32\n"
    assert emulator.client("s3", HOME).list_objects_v2(Bucket=BUCKET)["KeyCount"] == 2
    batches = invalidation_paths(emulator, distribution)
    assert len(batches) == 1 and {"/egress/ranges.json", "/egress/ranges.txt"} <= set(batches[0]), batches

    # A fifth gateway (outside the id filter). ALLOWLIST_MIN_COUNT is a guard like
    # --min-count: without the filter, four addresses are fewer than nine.
    seed.nat_gateway("us-east-1", {"Name": "egress-e", "team": "net"}, ips=["198.18.0.5"])
    emulator.clear_requests()
    refused = publisher.run("publish", env={**env, "ALLOWLIST_FILTERS": None, "ALLOWLIST_MIN_COUNT": "9"})
    assert refused.rc == 3, refused.stderr
    assert s3_puts(emulator) == 0

    # ALLOWLIST_OUT instead of the bucket: a local document, the filters still applied.
    local = {**env, "ALLOWLIST_BUCKET": None, "ALLOWLIST_DISTRIBUTION_ID": None, "ALLOWLIST_OUT": "-"}
    out = publisher.run("publish", env=local)
    assert out.rc == 0, out.stderr
    assert cidrs(json.loads(out.stdout)) == ["198.18.0.1/32", "198.18.0.2/32"]
    assert s3_puts(emulator) == 0


# --------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------


def test_sweep_expired_rules(publisher, emulator):
    seeded = seed_sweep(emulator)
    expired: dict[str, SeededRule] = seeded["expired"]
    everything = ingress_rule_ids(emulator, "us-east-1") | ingress_rule_ids(emulator, "us-west-2")
    emulator.clear_requests()

    # --dry-run: stdout lists exactly the expired managed rules; nothing is revoked.
    dry = publisher.run(*sweep_args("--dry-run"))
    assert dry.rc == 0, dry.stderr
    lines = [line.split() for line in dry.stdout.splitlines() if line.strip()]
    assert all(len(fields) == 8 for fields in lines), dry.stdout
    assert sorted(fields[2] for fields in lines) == sorted(expired)
    for region, group, rule_id, cidr, protocol, ports, expires_at, grant_id in lines:
        want = expired[rule_id]
        assert (region, group, cidr, protocol, expires_at, grant_id) == (
            want.region, want.group, want.cidr, "tcp", want.expires_at, want.grant_id
        )
        assert str(want.port) in ports
    s = summary(dry, "sweep")
    assert (s["regions"], s["expired"], s["revoked"], s["dry_run"]) == ("2", "5", "0", "true"), s
    assert emulator.count(action="RevokeSecurityGroupIngress") == 0
    assert ingress_rule_ids(emulator, "us-east-1") | ingress_rule_ids(emulator, "us-west-2") == everything

    # The sweep: exactly the expired managed rules go, one call per group.
    swept = publisher.run(*sweep_args())
    assert swept.rc == 0, swept.stderr
    assert swept.stdout == ""
    assert_swept(emulator, seeded)
    assert len(everything) - len(expired) == len(
        ingress_rule_ids(emulator, "us-east-1") | ingress_rule_ids(emulator, "us-west-2")
    )
    assert emulator.count(region="us-east-1", action="RevokeSecurityGroupIngress") == 1
    assert emulator.count(region="us-west-2", action="RevokeSecurityGroupIngress") == 1
    s = summary(swept, "sweep")
    assert [s.get(k) for k in ("regions", "expired", "revoked", "groups", "failed", "dry_run")] == [
        "2", "5", "5", "2", "0", "false"
    ], s

    # Nothing left to do.
    again = publisher.run(*sweep_args())
    assert again.rc == 0, again.stderr
    s = summary(again, "sweep")
    assert (s["expired"], s["revoked"]) == ("0", "0"), s
    assert emulator.count(action="RevokeSecurityGroupIngress") == 2


def test_sweep_concurrent_sweeps(publisher, emulator):
    seeded = seed_sweep(emulator)
    # Every revoke is held 2 s by the emulator, so both sweeps see the same expired
    # rules and the later revoke of each group finds them already gone.
    emulator.set_faults([{"mode": "delay", "action": "RevokeSecurityGroupIngress", "delay_ms": 2000}])
    emulator.clear_requests()

    first = publisher.start(*sweep_args())
    second = publisher.start(*sweep_args())
    results = [first.wait(timeout=90), second.wait(timeout=90)]

    for result in results:
        assert result.rc == 0, result.stderr
        assert summary(result, "sweep")["failed"] == "0"
    assert_swept(emulator, seeded)
    assert emulator.count(action="RevokeSecurityGroupIngress") >= 3, "the two sweeps really raced"


def test_sweep_grace(publisher, emulator):
    seed = emulator.seed
    group = seed.security_group("us-east-1", "bastion")
    now = datetime.now(timezone.utc)
    recent = seed.managed_rule("us-east-1", group, "198.51.100.1/32", 22, now - timedelta(hours=1))
    old = seed.managed_rule("us-east-1", group, "198.51.100.2/32", 22, now - timedelta(hours=3))

    # --grace 2h: only the rule expired for longer than two hours goes.
    result = publisher.run("sweep", "--regions", "us-east-1", "--grace", "2h")
    assert result.rc == 0, result.stderr
    assert summary(result, "sweep")["revoked"] == "1"
    assert rule_ids_of_group(emulator, "us-east-1", group) == {recent}
    assert old not in ingress_rule_ids(emulator, "us-east-1")


@pytest.mark.parametrize("terraform", ["1.15.5"], indirect=True, ids=["tf1.15.5"])
def test_sweep_expired_terraform_grant(terraform, publisher, emulator, my_ip):
    group = emulator.seed.security_group(HOME, "bastion")
    terraform.write("main.tf", config(f"""\
resource "allowlist_temporary_ingress" "oncall" {{
  security_group_ids = {json.dumps([group])}
  ports              = [22]
  ttl                = "1h"
}}

output "grant" {{ value = allowlist_temporary_ingress.oncall }}
""", ip_lookup_url=my_ip.url))

    # Terraform grants access for an hour.
    terraform.apply()
    grant = terraform.output()["grant"]["value"]
    assert rule_ids_of_group(emulator, HOME, group) == set(grant["rule_ids"]) and len(grant["rule_ids"]) == 1

    # Now, and half an hour ahead, the sweep leaves the grant alone.
    for offset in (None, "30m"):
        result = publisher.run("sweep", "--regions", HOME, env={"ALLOWLIST_CLOCK_OFFSET": offset})
        assert result.rc == 0, result.stderr
        assert summary(result, "sweep")["revoked"] == "0", offset
        assert rule_ids_of_group(emulator, HOME, group) == set(grant["rule_ids"])

    # Two hours ahead the grant has expired: the sweep revokes its rule.
    result = publisher.run("sweep", "--regions", HOME, env={"ALLOWLIST_CLOCK_OFFSET": "2h"})
    assert result.rc == 0, result.stderr
    s = summary(result, "sweep")
    assert (s["expired"], s["revoked"], s["groups"]) == ("1", "1", "1"), s
    assert rule_ids_of_group(emulator, HOME, group) == set()

    # Terraform sees the grant gone and plans to create it again.
    plan = terraform.run("plan", "-no-color", "-detailed-exitcode", check=False)
    assert plan.rc == 2, plan.stdout + plan.stderr
    assert "allowlist_temporary_ingress.oncall will be created" in plan.stdout


# --------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------


def run_args(*extra: str) -> list[str]:
    return ["run", "--every", "2s", "--regions", HOME, "--tag", TAG, "--bucket", BUCKET, *extra]


def test_run_publishes_and_sweeps_every_cycle(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    group = seed.security_group(HOME, "bastion")
    emulator.clear_requests()
    process = publisher.start(*run_args())

    # The first cycle publishes and sweeps.
    wait_until("the first sweep summary", lambda: summaries(process.stderr(), "sweep"), timeout=30, process=process)
    first_seen = time.monotonic()
    assert cidrs(read_object(emulator).document) == ["198.18.0.1/32"]

    # A rule that expired a minute ago appears between cycles.
    expired = seed.managed_rule(HOME, group, "198.51.100.1/32", 22, datetime.now(timezone.utc) - timedelta(minutes=1))

    # Two more cycles, started about 2 s apart.
    def three_cycles() -> bool:
        err = process.stderr()
        return len(summaries(err, "publish")) >= 3 and len(summaries(err, "sweep")) >= 3
    wait_until("three publish and three sweep summaries", three_cycles, timeout=20, process=process)
    # Cycle starts are 4 s apart; allow for the first cycle having been slower.
    assert time.monotonic() - first_seen >= 2.5, "cycles start --every 2s apart, not back to back"

    # The expired rule was swept; the unchanged list was written once.
    assert expired not in ingress_rule_ids(emulator, HOME)
    err = process.stderr()
    assert any(s["revoked"] == "1" for s in summaries(err, "sweep")), err
    changed = [s["changed"] for s in summaries(err, "publish")]
    assert changed[0] == "true" and set(changed[1:]) == {"false"}, changed
    assert s3_puts(emulator) == 1

    # SIGTERM: a clean exit within 10 s.
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=10).rc == 0


def test_run_survives_a_failed_cycle(publisher, emulator):
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    process = publisher.start(*run_args())
    wait_until("the first publish summary", lambda: summaries(process.stderr(), "publish"), timeout=30, process=process)

    # One cycle fails: the next DescribeNatGateways is refused, once. A new gateway waits to be published.
    seed.nat_gateway(HOME, {"Name": "egress-2"}, ips=["198.18.0.2"])
    emulator.set_faults([{
        "region": HOME, "action": "DescribeNatGateways", "mode": "error",
        "status": 403, "code": "UnauthorizedOperation", "times": 1,
    }])

    # The failure is logged, the process keeps running, and a later cycle publishes the change.
    def failure_logged() -> bool:
        return any(HOME in line and "UnauthorizedOperation" in line for line in process.stderr().splitlines())
    wait_until("the failure in the log", failure_logged, timeout=20, process=process)
    wait_until(
        "the new gateway published",
        lambda: "198.18.0.2/32" in cidrs(read_object(emulator).document),
        timeout=20,
        process=process,
    )
    after_failure = process.stderr().split("UnauthorizedOperation", 1)[1]
    assert any(s["changed"] == "true" for s in summaries(after_failure, "publish")), process.stderr()
    assert process.poll() is None

    # SIGINT: a clean exit too.
    process.signal(signal.SIGINT)
    assert process.wait(timeout=10).rc == 0


def test_run_revokes_a_grant_within_seconds_of_its_expiry(publisher, emulator):
    """A 20-second grant under `run --every 5m`: the first cycle sees it live and wakes at its
    expiry; the rule is gone within 5 s of it, by a sweep without a publish, long before the
    next cycle."""
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    group = seed.security_group(HOME, "bastion")
    # Tags hold whole seconds: the grant expires on the second 20 s from now.
    expires_at = datetime.fromtimestamp(math.ceil(time.time()) + 20, timezone.utc)
    rule = seed.managed_rule(HOME, group, "198.51.100.1/32", 22, expires_at)
    process = publisher.start("run", "--every", "5m", "--regions", HOME, "--tag", TAG, "--bucket", BUCKET,
                              "--log-level", "debug")

    # The first cycle publishes, sweeps nothing, and schedules a wake-up for the expiry.
    wait_until("the first sweep summary", lambda: summaries(process.stderr(), "sweep"), timeout=30, process=process)
    first = summaries(process.stderr(), "sweep")[0]
    assert (first["expired"], first["revoked"]) == ("0", "0"), first
    assert "waking for it" in process.stderr()
    assert rule in rule_ids_of_group(emulator, HOME, group)

    # The rule goes within 5 s of its expiry (bounded wait; polled every 0.1 s).
    wait_until("the rule revoked", lambda: rule not in rule_ids_of_group(emulator, HOME, group),
               timeout=max(0.0, expires_at.timestamp() - time.time()) + 15, process=process)
    delay = time.time() - expires_at.timestamp()
    print(f"revoked {delay:.2f} s after its expiry (run --every 5m)")
    assert delay <= 5.0, f"revoked {delay:.1f} s after its expiry"

    # By a wake-up: a second sweep, no second publish; then nothing more to wake for (no loop).
    wait_until("the wake-up's sweep summary", lambda: len(summaries(process.stderr(), "sweep")) >= 2,
               timeout=10, process=process)
    time.sleep(2.5)
    err = process.stderr()
    sweeps = summaries(err, "sweep")
    assert [(s["expired"], s["revoked"], s["cycle"]) for s in sweeps] == [("0", "0", "1"), ("1", "1", "1")], err
    assert len(summaries(err, "publish")) == 1, err
    assert err.count("woke for an expiry") == 1, err

    process.signal(signal.SIGTERM)
    assert process.wait(timeout=10).rc == 0


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

BAD_USAGE = [
    (["publish", "--out", "-", "--regions", HOME, "--max-shrink", "150"], ["--max-shrink"]),
    (["publish", "--out", "-", "--regions", HOME, "--max-shrink", "-1"], ["--max-shrink"]),
    (["publish", "--out", "-", "--regions", HOME, "--min-count", "-1"], ["--min-count"]),
    (["publish", "--out", "-", "--regions", HOME, "--tag", "novalue"], ["--tag"]),
    (["publish", "--regions", HOME, "--tag", TAG], ["--bucket", "--out"]),  # neither given
    (["run", "--every", "0s", "--regions", HOME, "--bucket", BUCKET], ["--every"]),
    (["run", "--every", "500ms", "--regions", HOME, "--bucket", BUCKET], ["--every"]),
    (["run", "--every", "soon", "--regions", HOME, "--bucket", BUCKET], ["--every"]),
    (["sweep", "--regions", HOME, "--grace", "-5m"], ["--grace"]),
    (["--log-format", "xml", "sweep", "--regions", HOME], ["--log-format"]),
    (["sweep", "--regions", HOME, "--log-level", "loud"], ["--log-level"]),
]


@pytest.mark.parametrize(
    "args, named", BAD_USAGE,
    ids=["max-shrink-150", "max-shrink-negative", "min-count-negative", "tag-without-value",
         "publish-without-target", "every-0s", "every-500ms", "every-word", "grace-negative",
         "log-format", "log-level"],
)
def test_cli_bad_flags(publisher, emulator, args, named):
    result = publisher.run(*args)
    assert result.rc == 2, result.stderr
    for flag in named:
        assert flag in result.stderr, result.stderr
    assert result.stdout == ""
    assert emulator.requests()["total"] == 0, "rejected before any AWS call"


def test_cli_bad_value_from_environment(publisher, emulator):
    result = publisher.run("publish", "--out", "-", "--regions", HOME, env={"ALLOWLIST_MAX_SHRINK": "150"})
    assert result.rc == 2, result.stderr
    assert "--max-shrink" in result.stderr or "ALLOWLIST_MAX_SHRINK" in result.stderr, result.stderr
    assert emulator.requests()["total"] == 0


@pytest.mark.parametrize("command", ["publish", "sweep"])
def test_cli_unknown_region(publisher, emulator, command):
    emulator.seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    extra = ["--tag", TAG, "--out", "-"] if command == "publish" else []
    result = publisher.run(command, "--regions", f"{HOME},us-nowhere-1", *extra)
    assert result.rc == 2, result.stderr
    assert "--regions" in result.stderr and "us-nowhere-1" in result.stderr, result.stderr
    assert result.stdout == ""


HELP = {
    (): ["publish", "sweep", "run", "--region", "--profile", "--endpoint-url", "--log-format", "--log-level"],
    ("publish",): ["--regions", "--tag", "--filter", "--bucket", "--key", "--text-key", "--cache-control",
                   "--distribution-id", "--out", "--text-out", "--service", "--min-count", "--max-shrink", "--force"],
    ("sweep",): ["--regions", "--grace", "--dry-run"],
    ("run",): ["--every", "--regions", "--tag", "--bucket", "--max-shrink", "--grace"],
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: "-".join(c) or "top")
def test_cli_help(publisher, emulator, command):
    result = publisher.run(*command, "--help")
    assert result.rc == 0, result.stderr
    shown = result.stdout + result.stderr
    for flag in HELP[command]:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown), f"{flag} missing from help:\n{shown}"
    assert emulator.requests()["total"] == 0


def test_cli_global_options_before_or_after_the_command(publisher, emulator):
    emulator.seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    publish = ["publish", "--regions", HOME, "--tag", TAG, "--out", "-"]
    with dead_endpoint() as dead:
        # AWS_ENDPOINT_URL leads nowhere; --endpoint-url (before or after the command) wins.
        for args in (
            ["--endpoint-url", emulator.url, "--log-format", "json", *publish],
            [*publish, "--endpoint-url", emulator.url, "--log-format", "json"],
        ):
            result = publisher.run(*args, env={"AWS_ENDPOINT_URL": dead})
            assert result.rc == 0, (args, result.stderr)
            assert cidrs(json.loads(result.stdout)) == ["198.18.0.1/32"]
            # --log-format json: every stderr line is one JSON object, the summary among them.
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert all(isinstance(json.loads(line), dict) for line in lines), result.stderr
            assert any("publish summary" in line for line in lines), result.stderr

        # The same through ALLOWLIST_ENDPOINT_URL and ALLOWLIST_LOG_FORMAT.
        result = publisher.run(*publish, env={
            "AWS_ENDPOINT_URL": dead, "ALLOWLIST_ENDPOINT_URL": emulator.url, "ALLOWLIST_LOG_FORMAT": "json",
        })
        assert result.rc == 0, result.stderr
        assert all(isinstance(json.loads(line), dict) for line in result.stderr.splitlines() if line.strip())


def test_cli_trace_logs_carry_no_credentials(publisher, emulator):
    # Distinctive credentials, a publish and a sweep at the most verbose level.
    secret = "SeCrEt/publisher+Key0123456789abcdefXYZ"
    token = "SessionToken-publisher-5f2a9c"
    seed = emulator.seed
    seed.bucket(BUCKET)
    seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    env = {"AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
    runs = [
        publisher.run(*publish_args(regions=[HOME]), "--log-level", "trace", env=env),
        publisher.run("sweep", "--regions", HOME, "--log-level", "trace", "--log-format", "json", env=env),
    ]
    for result in runs:
        assert result.rc == 0, result.stderr
        # The run really was verbose (debug lines present), and no secret part of it leaked.
        assert "DEBUG" in result.stderr or '"level":"DEBUG"' in result.stderr, result.stderr
        for needle in (secret, token, "Signature=", "x-amz-security-token"):
            assert needle not in result.stderr, needle


def test_cli_bucket_without_a_region(publisher, emulator):
    # No AWS_REGION, no --region, no profile: the bucket's region is unknown.
    result = publisher.run(*publish_args(regions=[HOME]), env={"AWS_REGION": None})
    assert result.rc == 2, result.stderr
    assert "--region" in result.stderr, result.stderr
    assert emulator.requests()["total"] == 0
    # --region fixes it.
    emulator.seed.bucket(BUCKET)
    emulator.seed.nat_gateway(HOME, {"Name": "egress"}, ips=["198.18.0.1"])
    fixed = publisher.run(*publish_args(regions=[HOME]), "--region", HOME, env={"AWS_REGION": None})
    assert fixed.rc == 0, fixed.stderr

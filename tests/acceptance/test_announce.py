"""Acceptance tests for `publish --sns-topic-arn` and `publish --prefix-list` (issue 13).

The real binary runs against the patched emulator as an operator would run it:
an SQS queue subscribed to the SNS topic stands in for a customer's subscriber,
and managed prefix lists are read back with boto3 after each run, versions
included. The emulator's fault table makes SNS fail once, holds a Publish
while the process is killed (a crash after the write), and delays a
ModifyManagedPrefixList while "someone else" modifies the same list.

This module owns the push side of publishing: one announcement per change
with AWS's four fields, none for an unchanged or refused run, pending work
completed by the next run, and prefix lists kept equal to the published set
under the document's guards, MaxEntries and concurrent writers.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from datetime import datetime
from typing import Any

import pytest

from test_publisher import BUCKET, HOME, KEY, TAG, read_object, s3_puts, summary, wait_until

REGIONS = ["us-east-1", "us-west-2"]
PUBLIC_URL = "https://ips.example.com/ip-ranges.json"
FIELDS = {"create-time", "synctoken", "md5", "url"}
PENDING_HEADER = "allowlist-pending"


def args(*extra: str) -> list[str]:
    return ["publish", "--regions", ",".join(REGIONS), "--tag", TAG, "--bucket", BUCKET, *extra]


def sns_args(topic: str, *extra: str) -> list[str]:
    return args("--sns-topic-arn", topic, "--public-url", PUBLIC_URL, *extra)


class Subscriber:
    """An SQS queue subscribed to a new SNS topic: what a customer would receive."""

    def __init__(self, emulator, region: str = HOME):
        self.sns = emulator.client("sns", region)
        self.sqs = emulator.client("sqs", region)
        self.topic = self.sns.create_topic(Name="egress-ip-ranges")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="ip-ranges-changes")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)

    def take(self) -> list[dict[str, Any]]:
        """Every notification delivered since the last call (the SNS envelopes, parsed)."""
        envelopes = []
        for _ in range(50):  # bounded: the queue holds only what the test caused
            got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                break
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return envelopes


def check_announcement(envelope: dict[str, Any], emulator) -> dict[str, Any]:
    """The message body has exactly AWS's four fields, right for the object now in S3."""
    body = json.loads(envelope["Message"])
    assert set(body) == FIELDS, body
    obj = read_object(emulator)
    assert body["md5"] == hashlib.md5(obj.body).hexdigest()
    assert body["synctoken"] == obj.document["syncToken"]
    assert body["url"] == PUBLIC_URL
    created = datetime.fromisoformat(body["create-time"])
    assert created.utcoffset().total_seconds() == 0
    assert int(created.timestamp()) == int(body["synctoken"])
    # Attributes a subscriber can filter on.
    attrs = envelope["MessageAttributes"]
    assert attrs["synctoken"] == {"Type": "String", "Value": body["synctoken"]}
    assert attrs["prefixes"]["Type"] == "Number"
    assert int(attrs["prefixes"]["Value"]) == len(obj.document["prefixes"])
    return {**body, "added": int(attrs["added"]["Value"]), "removed": int(attrs["removed"]["Value"])}


def pending_record(emulator) -> str | None:
    """The record of owed work the publisher keeps on the document (S3 user metadata)."""
    head = emulator.client("s3", HOME).head_object(Bucket=BUCKET, Key=KEY)
    return head.get("Metadata", {}).get(PENDING_HEADER)


def sns_publishes(emulator) -> int:
    return emulator.count(service="sns", action="Publish")


# --------------------------------------------------------------------------
# SNS
# --------------------------------------------------------------------------


def test_announce_once_per_change_and_never_unchanged_or_refused(publisher, emulator):
    seed = emulator.seed
    for n in range(1, 6):
        seed.nat_gateway("us-east-1", {"Name": f"egress-{n}"}, ips=[f"198.18.0.{n}"])
    seed.bucket(BUCKET)
    sub = Subscriber(emulator)

    # The first publish is a change: one message, the four fields right.
    first = publisher.run(*sns_args(sub.topic))
    assert first.rc == 0, first.stderr
    (message,) = sub.take()
    body = check_announcement(message, emulator)
    assert (body["added"], body["removed"]) == (5, 0)
    assert summary(first, "publish")["announced"], first.stderr
    assert pending_record(emulator) is None, "the record is cleared once the work is done"

    # Unchanged: no message, no write, no Publish call.
    emulator.clear_requests()
    same = publisher.run(*sns_args(sub.topic))
    assert same.rc == 0, same.stderr
    assert sub.take() == []
    assert (s3_puts(emulator), sns_publishes(emulator)) == (0, 0)

    # One more gateway, one fewer: exactly one message for the new document.
    seed.nat_gateway("us-west-2", {"Name": "egress-west"}, ips=["198.18.1.1"])
    ec2 = emulator.client("ec2", "us-east-1")
    gateways = ec2.describe_nat_gateways(Filters=[{"Name": "tag:Name", "Values": ["egress-5"]}])["NatGateways"]
    seed.delete_nat_gateway("us-east-1", gateways[0]["NatGatewayId"])
    changed = publisher.run(*sns_args(sub.topic))
    assert changed.rc == 0, changed.stderr
    (message,) = sub.take()
    second = check_announcement(message, emulator)
    assert int(second["synctoken"]) > int(body["synctoken"])
    assert (second["added"], second["removed"]) == (1, 1)

    # A 60% shrink is refused: exit 3, nothing written, nothing announced.
    for gateway in ec2.describe_nat_gateways()["NatGateways"]:
        if gateway["State"] == "available" and gateway["NatGatewayAddresses"][0]["PublicIp"] in (
            "198.18.0.2", "198.18.0.3", "198.18.0.4"
        ):
            seed.delete_nat_gateway("us-east-1", gateway["NatGatewayId"])
    emulator.clear_requests()
    refused = publisher.run(*sns_args(sub.topic))
    assert refused.rc == 3, refused.stderr
    assert sub.take() == []
    assert (s3_puts(emulator), sns_publishes(emulator)) == (0, 0)


def test_announce_failing_once_is_sent_by_the_next_run_exactly_once(publisher, emulator):
    seed = emulator.seed
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.1", "198.18.0.2"])
    seed.bucket(BUCKET)
    distribution = seed.distribution(BUCKET)
    sub = Subscriber(emulator)
    run_args = sns_args(sub.topic, "--distribution-id", distribution)

    # SNS (and CloudFront) refuse once, after the document is written.
    emulator.set_faults([
        {"service": "sns", "action": "Publish", "mode": "error", "status": 403,
         "code": "AuthorizationError", "message": "not now", "times": 1},
        {"service": "cloudfront", "action": "POST", "mode": "error", "status": 403,
         "code": "AccessDenied", "message": "not now", "times": 1},
    ])
    failed = publisher.run(*run_args)
    assert failed.rc == 1, failed.stderr
    assert "SNS" in failed.stderr and "AuthorizationError" in failed.stderr, failed.stderr
    assert "CloudFront" in failed.stderr, failed.stderr
    document = read_object(emulator).document
    assert [p["ip_prefix"] for p in document["prefixes"]] == ["198.18.0.1/32", "198.18.0.2/32"]
    assert sub.take() == []
    assert pending_record(emulator) is not None

    # Nothing changed since: the next run announces that document and invalidates, once each.
    emulator.clear_requests()
    next_run = publisher.run(*run_args)
    assert next_run.rc == 0, next_run.stderr
    s = summary(next_run, "publish")
    assert s["changed"] == "false", s
    assert set(s["completed_pending"].split(",")) == {"invalidate", "announce"}, s
    (message,) = sub.take()
    body = check_announcement(message, emulator)
    assert body["synctoken"] == document["syncToken"]
    assert (sns_publishes(emulator), emulator.count(service="cloudfront", action="POST")) == (1, 1)
    assert pending_record(emulator) is None
    # The document's bytes are what they were (only the record on it changed).
    assert read_object(emulator).document == document

    # And the run after that owes nothing.
    emulator.clear_requests()
    assert publisher.run(*run_args).rc == 0
    assert sub.take() == []
    assert (s3_puts(emulator), sns_publishes(emulator), emulator.count(service="cloudfront")) == (0, 0, 0)


def test_announce_survives_a_crash_between_the_write_and_the_announcement(publisher, emulator):
    seed = emulator.seed
    seed.nat_gateway("us-east-1", {"Name": "egress-a"}, ips=["198.18.0.7"])
    seed.bucket(BUCKET)
    sub = Subscriber(emulator)

    # The Publish call is held unanswered; the process dies meanwhile (SIGKILL: no cleanup).
    emulator.set_faults([{"service": "sns", "action": "Publish", "mode": "drop", "times": 1,
                          "delay_ms": 30000}])
    process = publisher.start(*sns_args(sub.topic))
    wait_until("the Publish to be held", lambda: emulator.held() == 1, timeout=30, process=process)
    process.signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert read_object(emulator).document["prefixes"][0]["ip_prefix"] == "198.18.0.7/32"
    assert pending_record(emulator) is not None, "the document carries what it owes"
    assert sub.take() == []

    emulator.clear_faults()
    after = publisher.run(*sns_args(sub.topic))
    assert after.rc == 0, after.stderr
    (message,) = sub.take()
    check_announcement(message, emulator)
    assert pending_record(emulator) is None


def test_sns_flags_are_checked_before_any_call(publisher, emulator):
    topic = "arn:aws:sns:us-east-1:123456789012:t"
    for extra, flag in [
        (["--sns-topic-arn", topic], "--public-url"),
        (["--sns-topic-arn", "egress-topic", "--public-url", PUBLIC_URL], "--sns-topic-arn"),
        (["--sns-topic-arn", topic, "--public-url", "ips.example.com/x"], "--public-url"),
        (["--prefix-list", "pl-0123"], "--prefix-list"),
    ]:
        result = publisher.run(*args(*extra))
        assert result.rc == 2, (extra, result.stderr)
        assert flag in result.stderr, (extra, result.stderr)
    # Through the environment too.
    result = publisher.run(*args(), env={"ALLOWLIST_SNS_TOPIC_ARN": topic})
    assert result.rc == 2 and "--public-url" in result.stderr, result.stderr
    assert emulator.requests()["total"] == 0


# --------------------------------------------------------------------------
# Managed prefix lists
# --------------------------------------------------------------------------


def create_list(emulator, region: str, cidrs: list[str], max_entries: int, family: str = "IPv4") -> str:
    ec2 = emulator.client("ec2", region)
    return ec2.create_managed_prefix_list(
        PrefixListName=f"customer-egress-{family.lower()}", AddressFamily=family, MaxEntries=max_entries,
        Entries=[{"Cidr": c, "Description": "by hand"} for c in cidrs],
    )["PrefixList"]["PrefixListId"]


def list_state(emulator, region: str, pl_id: str) -> tuple[int, int, list[tuple[str, str]]]:
    """(version, MaxEntries, sorted (cidr, description) entries) of a list."""
    ec2 = emulator.client("ec2", region)
    pl = ec2.describe_managed_prefix_lists(PrefixListIds=[pl_id])["PrefixLists"][0]
    entries = ec2.get_managed_prefix_list_entries(PrefixListId=pl_id)["Entries"]
    return pl["Version"], pl["MaxEntries"], sorted((e["Cidr"], e.get("Description", "")) for e in entries)


def seed_five(emulator) -> list[str]:
    ips = [f"198.18.0.{n}" for n in range(1, 6)]
    for n, ip in enumerate(ips):
        emulator.seed.nat_gateway("us-east-1" if n < 3 else "us-west-2", {"Name": f"egress-{n}"}, ips=[ip])
    emulator.seed.bucket(BUCKET)
    return [f"{ip}/32" for ip in ips]


def test_prefix_lists_equal_the_published_set(publisher, emulator):
    cidrs = seed_five(emulator)
    east = create_list(emulator, "us-east-1", ["203.0.113.9/32", cidrs[0]], max_entries=10)
    west = create_list(emulator, "eu-west-1", [], max_entries=10)
    v6 = create_list(emulator, "us-west-2", [], max_entries=5, family="IPv6")
    lists = f"us-east-1={east},eu-west-1={west}"

    result = publisher.run(*args("--prefix-list", lists, "--prefix-list", f"us-west-2={v6}"))
    assert result.rc == 0, result.stderr
    s = summary(result, "publish")
    assert (s["prefix_lists"], s["prefix_lists_changed"]) == ("3", "2"), s
    for region, pl_id in (("us-east-1", east), ("eu-west-1", west)):
        version, _, entries = list_state(emulator, region, pl_id)
        assert [c for c, _ in entries] == sorted(cidrs), (region, entries)
        assert version == 2, "one modify each"
    # Descriptions say where each address comes from.
    described = dict(list_state(emulator, "eu-west-1", west)[2])
    assert described[cidrs[0]] == "us-east-1 EGRESS (allowlist)"
    assert described[cidrs[4]] == "us-west-2 EGRESS (allowlist)"
    # The IPv6 list: nothing of its family is published, so it stays empty and untouched.
    assert list_state(emulator, "us-west-2", v6)[0::2] == (1, [])

    # Unchanged: one read per list in line (two for the empty one), no modify.
    emulator.clear_requests()
    again = publisher.run(*args("--prefix-list", lists, "--prefix-list", f"us-west-2={v6}"))
    assert again.rc == 0, again.stderr
    assert emulator.count(service="ec2", action="ModifyManagedPrefixList") == 0
    assert emulator.count(region="us-east-1", service="ec2", action="GetManagedPrefixListEntries") == 1
    assert emulator.count(region="us-east-1", service="ec2", action="DescribeManagedPrefixLists") == 0
    assert emulator.count(region="eu-west-1", service="ec2") == 1
    assert s3_puts(emulator) == 0

    # Someone edits a list by hand: the next run puts it back.
    emulator.client("ec2", "us-east-1").modify_managed_prefix_list(
        PrefixListId=east, CurrentVersion=2, AddEntries=[{"Cidr": "192.0.2.50/32"}])
    assert publisher.run(*args("--prefix-list", lists)).rc == 0
    assert [c for c, _ in list_state(emulator, "us-east-1", east)[2]] == sorted(cidrs)


def test_prefix_list_concurrent_modify_is_retried_from_a_fresh_read(publisher, emulator):
    cidrs = seed_five(emulator)
    east = create_list(emulator, "us-east-1", [cidrs[0]], max_entries=10)
    ec2 = emulator.client("ec2", "us-east-1")

    # Our ModifyManagedPrefixList is held 2s; meanwhile someone else modifies the list.
    emulator.set_faults([{"region": "us-east-1", "service": "ec2", "action": "ModifyManagedPrefixList",
                          "mode": "delay", "delay_ms": 2000, "times": 1}])
    process = publisher.start(*args("--prefix-list", f"us-east-1={east}"))
    wait_until("our modify to reach the emulator",
               lambda: emulator.count(action="ModifyManagedPrefixList") == 1, timeout=30, process=process)
    ec2.modify_managed_prefix_list(PrefixListId=east, CurrentVersion=1,
                                   AddEntries=[{"Cidr": "192.0.2.77/32", "Description": "theirs"}])
    result = process.wait(timeout=60)
    assert result.rc == 0, result.stderr

    # Their change landed (version 2), ours was refused on version 1 and redone on version 2.
    version, _, entries = list_state(emulator, "us-east-1", east)
    assert [c for c, _ in entries] == sorted(cidrs)
    assert version == 3
    theirs = ec2.get_managed_prefix_list_entries(PrefixListId=east, TargetVersion=2)["Entries"]
    assert {e["Cidr"] for e in theirs} == {cidrs[0], "192.0.2.77/32"}
    assert emulator.count(action="ModifyManagedPrefixList") == 3  # ours (stale), theirs, ours
    assert re.search(r"synced the prefix list.*attempts=2", result.stderr), result.stderr


def test_prefix_list_guards_leave_the_list_as_it_was(publisher, emulator):
    cidrs = seed_five(emulator)
    east = create_list(emulator, "us-east-1", [], max_entries=10)
    assert publisher.run(*args("--prefix-list", f"us-east-1={east}")).rc == 0
    before = list_state(emulator, "us-east-1", east)
    assert [c for c, _ in before[2]] == sorted(cidrs)

    # A 60% shrink (5 → 2): the document guard refuses, the list keeps its version and entries.
    ec2 = emulator.client("ec2", "us-east-1")
    for gateway in ec2.describe_nat_gateways()["NatGateways"]:
        emulator.seed.delete_nat_gateway("us-east-1", gateway["NatGatewayId"])
    emulator.clear_requests()
    refused = publisher.run(*args("--prefix-list", f"us-east-1={east}"))
    assert refused.rc == 3, refused.stderr
    assert list_state(emulator, "us-east-1", east) == before
    assert emulator.count(action="ModifyManagedPrefixList") == 0

    # A failed region refuses too.
    emulator.set_faults([{"region": "us-west-2", "action": "DescribeNatGateways", "mode": "error",
                          "status": 403, "code": "UnauthorizedOperation", "times": None}])
    failed_region = publisher.run(*args("--prefix-list", f"us-east-1={east}", "--force"))
    assert failed_region.rc == 3, failed_region.stderr
    assert list_state(emulator, "us-east-1", east) == before


def test_prefix_list_too_small_exits_3_unless_grow(publisher, emulator):
    cidrs = seed_five(emulator)
    small = create_list(emulator, "us-east-1", ["203.0.113.9/32"], max_entries=3)
    before = list_state(emulator, "us-east-1", small)
    emulator.clear_requests()

    refused = publisher.run(*args("--prefix-list", f"us-east-1={small}"))
    assert refused.rc == 3, refused.stderr
    for needle in (small, "at most 3", "5 IPv4", "--prefix-list-grow"):
        assert needle in refused.stderr, (needle, refused.stderr)
    assert list_state(emulator, "us-east-1", small) == before
    assert s3_puts(emulator) == 0, "nothing is published that a list cannot follow"

    grown = publisher.run(*args("--prefix-list", f"us-east-1={small}", "--prefix-list-grow"))
    assert grown.rc == 0, grown.stderr
    version, max_entries, entries = list_state(emulator, "us-east-1", small)
    assert (version, max_entries) == (2, 5)
    assert [c for c, _ in entries] == sorted(cidrs)
    assert "every security group rule that references the list" in grown.stderr, grown.stderr
    # Resizing and the entries were two calls.
    assert emulator.count(action="ModifyManagedPrefixList") == 2

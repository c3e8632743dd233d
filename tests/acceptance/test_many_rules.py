"""Acceptance tests over thousands of rules: several DescribeSecurityGroupRules pages.

The emulator pages DescribeSecurityGroupRules as AWS does (testbed/emulator.py:
``MaxResults`` at most 1,000, an opaque ``NextToken``, rules in creation order),
and our clients ask for pages of 1,000. With 2,520 managed rules in one region
every listing of our rules takes three pages, so these tests fail if a caller
stops after the first page or follows the token wrongly.

This module owns: the sweep over 2,520 managed rules revoking exactly the
expired ones, the provider's refresh snapshot finding a grant whose rule
lies beyond the first page, and `data "allowlist_grants"` listing every grant
over those pages.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conftest import config

REGION = "us-east-1"  # AWS_REGION of every run
GROUPS = 45
PER_CALL = 28  # managed rules per AuthorizeSecurityGroupIngress: one expired and one live call per group
PAGE = 1000  # the page size our clients ask for (core/src/ingress/ec2.rs RULE_PAGE)
MANAGED_BY, MANAGED_BY_VALUE = "allowlist:managed-by", "allowlist"
SEED_WORKERS = 4


@dataclass
class Seeded:
    groups: list[str]
    expired: set[str] = field(default_factory=set)
    live: set[str] = field(default_factory=set)
    untouchable: set[str] = field(default_factory=set)  # untagged, or managed by someone else

    @property
    def managed(self) -> int:
        return len(self.expired) + len(self.live)


def tag_spec(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": "security-group-rule", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def seed_many_rules(emulator) -> Seeded:
    """45 groups in REGION, each with 28 expired and 28 live managed rules (two
    AuthorizeSecurityGroupIngress calls, tagged at creation), interleaved so
    every page holds both; every fifth group also gets an untagged rule and an
    expired rule managed by someone else. 2,520 managed rules in all."""
    seed = emulator.seed
    now = datetime.now(timezone.utc)
    groups = [seed.security_group(REGION, f"many-{n}") for n in range(GROUPS)]
    seeded = Seeded(groups)

    def authorize(client: Any, group: str, port: int, cidrs: list[str], tags: dict[str, str] | None) -> set[str]:
        response = client.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                            "IpRanges": [{"CidrIp": c} for c in cidrs]}],
            TagSpecifications=tag_spec(tags) if tags else [],
        )
        ids = {r["SecurityGroupRuleId"] for r in response["SecurityGroupRules"]}
        assert len(ids) == len(cidrs)
        return ids

    def fill(n: int) -> tuple[set[str], set[str], set[str]]:
        client = emulator.client("ec2", REGION)  # one per thread
        group = groups[n]

        def managed(expires: datetime, grant: str) -> dict[str, str]:
            return {MANAGED_BY: MANAGED_BY_VALUE, "allowlist:grant-id": grant,
                    "allowlist:expires-at": seed.rfc3339(expires)}

        expired = authorize(client, group, 22, [f"10.{n}.1.{i}/32" for i in range(PER_CALL)],
                            managed(now - timedelta(minutes=n + 1), f"grant-{n:016x}e"))
        live = authorize(client, group, 22, [f"10.{n}.2.{i}/32" for i in range(PER_CALL)],
                         managed(now + timedelta(hours=n + 1), f"grant-{n:016x}f"))
        untouchable: set[str] = set()
        if n % 5 == 0:
            untouchable |= authorize(client, group, 443, [f"10.{n}.3.1/32"], None)
            untouchable |= authorize(client, group, 443, [f"10.{n}.3.2/32"], {
                MANAGED_BY: "someone-else", "allowlist:expires-at": "2020-01-01T00:00:00Z"})
        return expired, live, untouchable

    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        for expired, live, untouchable in pool.map(fill, range(GROUPS)):
            seeded.expired |= expired
            seeded.live |= live
            seeded.untouchable |= untouchable
    return seeded


def all_ingress_rules(emulator, **kwargs: Any) -> list[list[dict[str, Any]]]:
    """Every inbound rule in REGION, page by page (pages of PAGE), through boto3's paginator."""
    paginator = emulator.client("ec2", REGION).get_paginator("describe_security_group_rules")
    return [
        [r for r in page["SecurityGroupRules"] if not r["IsEgress"]]
        for page in paginator.paginate(PaginationConfig={"PageSize": PAGE}, **kwargs)
    ]


def summary(stderr: str, kind: str) -> dict[str, str]:
    """The fields of the one ``<kind> summary`` line on stderr."""
    lines = [line for line in stderr.splitlines() if f"{kind} summary" in line]
    assert len(lines) == 1, stderr
    return {k: v.strip('"') for k, v in re.findall(r'([a-z_]+)=("[^"]*"|\S+)', lines[0].split(f"{kind} summary", 1)[1])}


def test_sweep_over_pages_revokes_exactly_the_expired_rules(publisher, emulator):
    start = time.monotonic()
    seeded = seed_many_rules(emulator)
    seeded_s = time.monotonic() - start
    assert seeded.managed == 2520 and len(seeded.expired) == 1260
    emulator.clear_requests()

    # The sweep: one listing of our rules (three pages), one revoke per group.
    start = time.monotonic()
    result = publisher.run("sweep", "--regions", REGION)
    swept_s = time.monotonic() - start
    assert result.rc == 0, result.stderr
    s = summary(result.stderr, "sweep")
    assert [s[k] for k in ("regions", "expired", "revoked", "groups", "failed")] == [
        "1", "1260", "1260", str(GROUPS), "0"
    ], s
    pages = emulator.count(region=REGION, action="DescribeSecurityGroupRules")
    assert pages == 3, f"{pages} DescribeSecurityGroupRules calls for 2,520 managed rules in pages of {PAGE}"
    assert emulator.count(region=REGION, action="RevokeSecurityGroupIngress") == GROUPS

    # Exactly the expired managed rules are gone, wherever their page was.
    remaining = {r["SecurityGroupRuleId"] for page in all_ingress_rules(emulator) for r in page}
    assert remaining.isdisjoint(seeded.expired), f"{len(remaining & seeded.expired)} expired rules remain"
    assert remaining == seeded.live | seeded.untouchable
    print(f"2,520 managed rules: seeded in {seeded_s:.1f} s; swept in {swept_s:.1f} s "
          f"with {pages} DescribeSecurityGroupRules pages")


@pytest.mark.parametrize("terraform", ["1.15.5"], indirect=True, ids=["tf1.15.5"])
def test_refresh_snapshot_reads_a_grant_beyond_the_first_page(terraform, emulator, my_ip):
    seed_many_rules(emulator)
    bastion = emulator.seed.security_group(REGION, "bastion")
    terraform.write("main.tf", config(f"""\
resource "allowlist_temporary_ingress" "oncall" {{
  security_group_ids = {json.dumps([bastion])}
  ports              = [22, 443]
  ttl                = "1h"
}}

output "rule_ids" {{ value = allowlist_temporary_ingress.oncall.rule_ids }}
""", ip_lookup_url=my_ip.url))

    # The grant is made after 2,520 other managed rules: its rules come last, on the third page.
    terraform.apply()
    rule_ids = set(terraform.output()["rule_ids"]["value"])
    assert len(rule_ids) == 2
    pages = all_ingress_rules(emulator, Filters=[{"Name": f"tag:{MANAGED_BY}", "Values": [MANAGED_BY_VALUE]}])
    assert [len(p) for p in pages] == [1000, 1000, 522]
    assert rule_ids <= {r["SecurityGroupRuleId"] for r in pages[2]}

    # The refresh reads every grant of the region from one snapshot of our rules: all three
    # pages. Had it stopped at the first, the grant's rules would look deleted and the plan
    # would replace it.
    emulator.clear_requests()
    assert terraform.plan_detailed() == 0, "the grant beyond the first page was not found"
    listed = emulator.count(region=REGION, action="DescribeSecurityGroupRules")
    assert listed == 3, f"the refresh made {listed} DescribeSecurityGroupRules calls, not one snapshot of 3 pages"

    # `data "allowlist_grants"` over the same three pages: every grant of the region, the 45
    # expired ones (rules from before sharing, held by their grant-id) marked so.
    terraform.write("grants.tf", """\
data "allowlist_grants" "all" { include_expired = true }

output "grants" {
  value = { for g in data.allowlist_grants.all.grants : g.id => [g.expired, length(g.rule_ids)] }
}
""")
    emulator.clear_requests()
    terraform.run("apply", "-auto-approve", "-no-color", "-refresh=false")
    listed = emulator.count(region=REGION, action="DescribeSecurityGroupRules")
    assert listed == 3, f"the grants data source made {listed} DescribeSecurityGroupRules calls, not 3 pages"
    grants = terraform.output()["grants"]["value"]
    assert len(grants) == 2 * GROUPS + 1
    assert sum(expired for expired, _ in grants.values()) == GROUPS
    assert all(count == PER_CALL for gid, (_, count) in grants.items() if gid.startswith("grant-0"))
    oncall = [v for gid, v in grants.items() if not gid.startswith("grant-0")]
    assert oncall == [[False, 2]]

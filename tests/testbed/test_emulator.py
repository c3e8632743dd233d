"""Tests of the test bed's emulator: each moto patch and each fault mode.

Owns the proof that testbed/emulator.py closes the moto gaps listed in
shared/notes/testbed.md, through boto3 against a launched emulator, so that a
provider test cannot pass *because of* one of those gaps. Clients here never
retry, so request counts and fault outcomes are exact.
"""

from __future__ import annotations

import base64
import os
import socket
import sys
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any, Iterator

import boto3
import botocore.config
import botocore.exceptions
import pytest

from testbed.seed import Emulator, without_aws_env

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = Path(os.environ.get("ALLOWLIST_VENV", REPO / ".venv")) / "bin" / "python"
NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})
REGION = "eu-central-1"
OTHER_REGION = "us-east-1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The emulator for this module; AWS_* variables are hidden from boto3 meanwhile."""
    python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
    with pytest.MonkeyPatch.context() as patch:
        for name in set(os.environ) - set(without_aws_env()):
            patch.delenv(name)
        emu = Emulator.launch(python, tmp_path_factory.mktemp("emu") / "emulator.log", timeout=30)
        try:
            yield emu
        finally:
            emu.stop()


@pytest.fixture(autouse=True)
def fresh(emulator: Emulator) -> None:
    emulator.reset()


def ec2(emulator: Emulator, region: str = REGION, validate: bool = True) -> Any:
    """An EC2 client that makes exactly one attempt per call (and, with
    `validate` off, sends out-of-range values for the server to judge)."""
    return boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=emulator.url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=NO_RETRY.merge(botocore.config.Config(parameter_validation=validate)),
    )


def error_of(call: Any, *args: Any, **kwargs: Any) -> botocore.exceptions.ClientError:
    """The ClientError a call raises (fails the test if it succeeds)."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def nat_ids(client: Any, **kwargs: Any) -> set[str]:
    return {g["NatGatewayId"] for g in client.describe_nat_gateways(**kwargs)["NatGateways"]}


# ---- DescribeNatGateways: tag filters -------------------------------------


def test_nat_gateway_tag_filters_use_aws_wildcards(emulator: Emulator) -> None:
    seed = emulator.seed
    proxy_a = seed.nat_gateway(REGION, {"Name": "egress-proxy-a", "Team": "net"})
    proxy_b = seed.nat_gateway(REGION, {"Name": "egress-proxy-b"})
    proxy_long = seed.nat_gateway(REGION, {"Name": "egress-proxy-ab"})
    database = seed.nat_gateway(REGION, {"Name": "db-nat", "Env": "prod"})
    client = ec2(emulator)

    def by(name: str, *values: str) -> set[str]:
        return nat_ids(client, Filters=[{"Name": name, "Values": list(values)}])

    assert by("tag:Name", "*proxy*") == {proxy_a, proxy_b, proxy_long}
    assert by("tag:Name", "egress-proxy-?") == {proxy_a, proxy_b}  # ? is exactly one char
    assert by("tag:Name", "db-nat", "egress-proxy-b") == {database, proxy_b}  # values OR-ed
    assert by("tag:Name", "EGRESS-*") == set()  # case-sensitive, like AWS
    assert by("tag:Name", "[e]gress*") == set()  # [ is literal, not a glob class
    assert by("tag:Missing", "*") == set()
    assert by("tag-key", "Team") == {proxy_a}
    assert by("tag-key", "E?v") == {database}
    assert by("tag-value", "prod") == {database}
    both = [
        {"Name": "tag:Name", "Values": ["egress-*"]},
        {"Name": "tag-key", "Values": ["Team"]},
    ]
    assert nat_ids(client, Filters=both) == {proxy_a}  # filters AND-ed
    assert nat_ids(client) == {proxy_a, proxy_b, proxy_long, database}


def test_nat_gateway_state_filter_and_unknown_filter(emulator: Emulator) -> None:
    live = emulator.seed.nat_gateway(REGION, {"Name": "live"})
    gone = emulator.seed.nat_gateway(REGION, {"Name": "gone"}, state="deleted")
    client = ec2(emulator)
    assert nat_ids(client, Filters=[{"Name": "state", "Values": ["available"]}]) == {live}
    assert nat_ids(client, Filters=[{"Name": "state", "Values": ["deleted"]}]) == {gone}
    err = error_of(client.describe_nat_gateways, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert err.response["Error"]["Code"] == "InvalidParameterValue"


def test_nat_gateways_are_per_region(emulator: Emulator) -> None:
    here = emulator.seed.nat_gateway(REGION, {"Name": "x"})
    there = emulator.seed.nat_gateway(OTHER_REGION, {"Name": "x"})
    assert nat_ids(ec2(emulator, REGION)) == {here}
    assert nat_ids(ec2(emulator, OTHER_REGION)) == {there}


# ---- DescribeNatGateways: pagination --------------------------------------


def test_nat_gateway_pagination_returns_each_gateway_once(emulator: Emulator) -> None:
    created = [emulator.seed.nat_gateway(REGION, {"Name": f"gw-{n}"}) for n in range(12)]
    client = ec2(emulator)
    pages: list[list[str]] = []
    tokens: list[str | None] = []
    kwargs: dict[str, Any] = {"MaxResults": 5}
    while True:
        response = client.describe_nat_gateways(**kwargs)
        pages.append([g["NatGatewayId"] for g in response["NatGateways"]])
        tokens.append(response.get("NextToken"))
        if not response.get("NextToken"):
            break
        kwargs["NextToken"] = response["NextToken"]
    assert [len(p) for p in pages] == [5, 5, 2]
    assert tokens[0] and tokens[1] and tokens[2] is None
    flat = [gid for page in pages for gid in page]
    assert sorted(flat) == sorted(created) and len(set(flat)) == 12


def test_nat_gateway_pagination_with_filter_and_paginator(emulator: Emulator) -> None:
    wanted = {emulator.seed.nat_gateway(REGION, {"Name": f"proxy-{n}"}) for n in range(7)}
    for n in range(6):
        emulator.seed.nat_gateway(REGION, {"Name": f"other-{n}"})
    paginator = ec2(emulator).get_paginator("describe_nat_gateways")
    pages = list(
        paginator.paginate(
            Filters=[{"Name": "tag:Name", "Values": ["proxy-*"]}],
            PaginationConfig={"PageSize": 5},
        )
    )
    assert [len(p["NatGateways"]) for p in pages] == [5, 2]
    assert {g["NatGatewayId"] for p in pages for g in p["NatGateways"]} == wanted


def test_nat_gateway_no_max_results_means_one_page(emulator: Emulator) -> None:
    for n in range(7):
        emulator.seed.nat_gateway(REGION, {"Name": f"gw-{n}"})
    response = ec2(emulator).describe_nat_gateways()
    assert len(response["NatGateways"]) == 7 and "NextToken" not in response


@pytest.mark.parametrize("max_results", [4, 1001])
def test_nat_gateway_max_results_range_is_enforced(emulator: Emulator, max_results: int) -> None:
    err = error_of(ec2(emulator, validate=False).describe_nat_gateways, MaxResults=max_results)
    assert err.response["Error"]["Code"] == "InvalidParameterValue"


def test_nat_gateway_bad_next_token_is_rejected(emulator: Emulator) -> None:
    ids = [emulator.seed.nat_gateway(REGION, {"Name": f"gw-{n}"}) for n in range(6)]
    client = ec2(emulator)
    token = client.describe_nat_gateways(MaxResults=5)["NextToken"]
    assert token not in ids  # opaque: passing the last id instead must not work
    for bad in ["nat-bogus", ids[4], token[:-4]]:
        err = error_of(client.describe_nat_gateways, MaxResults=5, NextToken=bad)
        assert err.response["Error"]["Code"] == "InvalidPaginationToken"


# ---- NAT gateways with several addresses ----------------------------------


def test_nat_gateway_carries_all_seeded_addresses(emulator: Emulator) -> None:
    ips = ["203.0.113.10", "203.0.113.11", "203.0.113.12"]
    gateway_id = emulator.seed.nat_gateway(REGION, {"Name": "multi"}, ips=ips)
    (gateway,) = ec2(emulator).describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"]
    addresses = gateway["NatGatewayAddresses"]
    assert [a["PublicIp"] for a in addresses] == ips
    assert [a["IsPrimary"] for a in addresses] == [True, False, False]
    assert all(a["AllocationId"].startswith("eipalloc-") for a in addresses)
    assert len({a["AllocationId"] for a in addresses}) == 3
    assert len({a["PrivateIp"] for a in addresses}) == 3


def test_associate_nat_gateway_address_adds_an_address(emulator: Emulator) -> None:
    gateway_id = emulator.seed.nat_gateway(REGION, {"Name": "grow"}, ips=["198.51.100.1"])
    client = ec2(emulator)
    allocation = client.allocate_address(Domain="vpc", Address="198.51.100.2")["AllocationId"]
    response = client.associate_nat_gateway_address(NatGatewayId=gateway_id, AllocationIds=[allocation])
    assert [a["PublicIp"] for a in response["NatGatewayAddresses"]] == ["198.51.100.2"]
    (gateway,) = client.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"]
    assert [a["PublicIp"] for a in gateway["NatGatewayAddresses"]] == ["198.51.100.1", "198.51.100.2"]
    # An address in use cannot join a second gateway.
    err = error_of(client.associate_nat_gateway_address, NatGatewayId=gateway_id, AllocationIds=[allocation])
    assert err.response["Error"]["Code"] == "Resource.AlreadyAssociated"


def test_delete_unknown_nat_gateway_is_an_aws_error(emulator: Emulator) -> None:
    err = error_of(ec2(emulator).delete_nat_gateway, NatGatewayId="nat-0123456789abcdef0")
    assert err.response["Error"]["Code"] == "NatGatewayNotFound"


# ---- AuthorizeSecurityGroupIngress ----------------------------------------


def permission(port: int, *cidrs: str) -> dict[str, Any]:
    return {
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "IpRanges": [{"CidrIp": c} for c in cidrs],
    }


def ingress_rule_ids(client: Any, group_id: str) -> set[str]:
    rules = client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return {r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if not r["IsEgress"]}


def test_authorize_ingress_returns_rules_of_every_permission(emulator: Emulator) -> None:
    group_id = emulator.seed.security_group(REGION, "web")
    client = ec2(emulator)
    response = client.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[permission(443, "192.0.2.1/32"), permission(22, "192.0.2.2/32", "192.0.2.3/32")],
    )
    returned = response["SecurityGroupRules"]
    assert sorted((r["FromPort"], r["CidrIpv4"]) for r in returned) == [
        (22, "192.0.2.2/32"),
        (22, "192.0.2.3/32"),
        (443, "192.0.2.1/32"),
    ]
    assert {r["SecurityGroupRuleId"] for r in returned} == ingress_rule_ids(client, group_id)


def test_authorize_ingress_is_atomic(emulator: Emulator) -> None:
    group_id = emulator.seed.security_group(REGION, "web")
    client = ec2(emulator)
    client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission(443, "192.0.2.1/32")])
    before = ingress_rule_ids(client, group_id)
    err = error_of(
        client.authorize_security_group_ingress,
        GroupId=group_id,
        IpPermissions=[permission(8443, "192.0.2.9/32"), permission(443, "192.0.2.1/32")],
    )
    assert err.response["Error"]["Code"] == "InvalidPermission.Duplicate"
    assert ingress_rule_ids(client, group_id) == before  # the 8443 rule was not kept


# ---- DescribeSecurityGroupRules: pagination -------------------------------


def grant_tags(grant: str) -> list[dict[str, Any]]:
    return [{"ResourceType": "security-group-rule", "Tags": [
        {"Key": "allowlist:managed-by", "Value": "allowlist"},
        {"Key": "allowlist:grant-id", "Value": grant},
    ]}]


def rules_in_one_call(client: Any, group_id: str, count: int, net: int, tags: list[dict[str, Any]] | None = None) -> list[str]:
    """`count` inbound rules (tcp/22 from 10.`net`.0.i/32) made by one call. Returns their ids."""
    response = client.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[permission(22, *(f"10.{net}.0.{i}/32" for i in range(count)))],
        TagSpecifications=tags or [],
    )
    return [r["SecurityGroupRuleId"] for r in response["SecurityGroupRules"]]


def rule_pages(client: Any, **kwargs: Any) -> tuple[list[list[str]], list[str | None]]:
    """Every page of DescribeSecurityGroupRules(**kwargs), followed by hand (bounded)."""
    pages: list[list[str]] = []
    tokens: list[str | None] = []
    for _ in range(100):
        response = client.describe_security_group_rules(**kwargs)
        pages.append([r["SecurityGroupRuleId"] for r in response["SecurityGroupRules"]])
        tokens.append(response.get("NextToken"))
        if not response.get("NextToken"):
            return pages, tokens
        kwargs["NextToken"] = response["NextToken"]
    raise AssertionError("more than 100 pages")


def test_security_group_rule_pages_return_each_rule_once_in_creation_order(emulator: Emulator) -> None:
    group_id = emulator.seed.security_group(REGION, "web")
    client = ec2(emulator)
    made = rules_in_one_call(client, group_id, 12, net=1)
    by_group = {"Filters": [{"Name": "group-id", "Values": [group_id]}]}
    ((everything,), _) = rule_pages(client, **by_group)  # no MaxResults: one page, no token
    assert len(everything) == 13 and everything[1:] == made  # the group's egress rule came first

    pages, tokens = rule_pages(client, MaxResults=5, **by_group)
    assert [len(p) for p in pages] == [5, 5, 3]
    assert tokens[0] and tokens[1] and tokens[0] != tokens[1] and tokens[2] is None
    assert [rule for page in pages for rule in page] == everything


def test_security_group_rule_pages_keep_filters(emulator: Emulator) -> None:
    web = emulator.seed.security_group(REGION, "web")
    db = emulator.seed.security_group(REGION, "db")
    client = ec2(emulator)
    ours = rules_in_one_call(client, web, 4, net=1, tags=grant_tags("grant-a"))
    rules_in_one_call(client, web, 3, net=2)  # untagged, between ours in creation order
    ours += rules_in_one_call(client, db, 5, net=3, tags=grant_tags("grant-b"))
    rules_in_one_call(client, db, 2, net=4, tags=grant_tags("grant-c"))
    paginator = client.get_paginator("describe_security_group_rules")

    def pages(*filters: tuple[str, list[str]]) -> list[list[str]]:
        return [
            [r["SecurityGroupRuleId"] for r in page["SecurityGroupRules"]]
            for page in paginator.paginate(
                Filters=[{"Name": n, "Values": v} for n, v in filters],
                PaginationConfig={"PageSize": 5},
            )
        ]

    managed = pages(("tag:allowlist:managed-by", ["allowlist"]))
    assert [len(p) for p in managed] == [5, 5, 1]
    found = [rule for page in managed for rule in page]
    assert found[:9] == ours and len(set(found)) == 11
    both = pages(("tag:allowlist:grant-id", ["grant-a", "grant-b"]), ("group-id", [db]))
    assert both == [ours[4:9]]  # a last page that is full carries no token


def test_security_group_rule_pages_survive_revokes_in_between(emulator: Emulator) -> None:
    group_id = emulator.seed.security_group(REGION, "web")
    client = ec2(emulator)
    made = rules_in_one_call(client, group_id, 12, net=1)
    by_group = {"Filters": [{"Name": "group-id", "Values": [group_id]}], "MaxResults": 5}
    first = client.describe_security_group_rules(**by_group)
    page = [r["SecurityGroupRuleId"] for r in first["SecurityGroupRules"]]
    # A concurrent sweep revokes the last rule of this page and the first of the next.
    client.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=[page[-1], made[4]])
    rest, _ = rule_pages(client, NextToken=first["NextToken"], **by_group)
    assert [rule for p in rest for rule in p] == made[5:]  # nothing repeated, nothing skipped


@pytest.mark.parametrize("max_results", [4, 1001])
def test_security_group_rule_max_results_range_is_enforced(emulator: Emulator, max_results: int) -> None:
    client = ec2(emulator, validate=False)
    err = error_of(client.describe_security_group_rules, MaxResults=max_results)
    assert err.response["Error"]["Code"] == "InvalidParameterValue"


def test_security_group_rule_bad_next_token_is_rejected(emulator: Emulator) -> None:
    group_id = emulator.seed.security_group(REGION, "web")
    client = ec2(emulator)
    made = rules_in_one_call(client, group_id, 8, net=1)
    token = client.describe_security_group_rules(MaxResults=5)["NextToken"]
    assert token not in made  # opaque: passing a rule id instead must not work
    not_ours = base64.urlsafe_b64encode(b"testbed-after:5").decode()  # a NAT gateway token's shape
    not_a_number = base64.urlsafe_b64encode(b"testbed-sgr-after:x").decode()
    for bad in ["sgr-bogus", made[3], not_ours, not_a_number, token + "!"]:
        err = error_of(client.describe_security_group_rules, MaxResults=5, NextToken=bad)
        assert err.response["Error"]["Code"] == "InvalidPaginationToken", bad


def test_tagged_rules_list_in_pages_quickly(emulator: Emulator) -> None:
    """1,200 tagged rules in 20 groups: two pages (at most 1,000 each) under a tag
    filter, answered in seconds (stock moto scans every tag of the region for
    each rule: minutes for this listing)."""
    client = ec2(emulator)
    groups = [emulator.seed.security_group(REGION, f"g{n}") for n in range(20)]
    for n, group_id in enumerate(groups):
        rules_in_one_call(client, group_id, 60, net=n, tags=grant_tags(f"grant-{n}"))
    start = time.monotonic()
    pages, _ = rule_pages(client, MaxResults=1000, Filters=[{"Name": "tag:allowlist:managed-by", "Values": ["allowlist"]}])
    took = time.monotonic() - start
    assert [len(p) for p in pages] == [1000, 200]
    assert len({rule for page in pages for rule in page}) == 1200
    print(f"1,200 tagged rules listed in 2 pages in {took:.2f} s")
    assert took < 20, f"listing took {took:.1f} s"
# ---- Managed prefix lists ---------------------------------------------------


def prefix_list(client: Any, cidrs: list[str], max_entries: int = 5, name: str = "egress") -> str:
    created = client.create_managed_prefix_list(
        PrefixListName=name, AddressFamily="IPv4", MaxEntries=max_entries,
        Entries=[{"Cidr": c, "Description": "seed"} for c in cidrs],
    )
    return created["PrefixList"]["PrefixListId"]


def described(client: Any, pl_id: str) -> dict[str, Any]:
    return client.describe_managed_prefix_lists(PrefixListIds=[pl_id])["PrefixLists"][0]


def entry_cidrs(client: Any, pl_id: str, **kwargs: Any) -> set[str]:
    entries = client.get_managed_prefix_list_entries(PrefixListId=pl_id, **kwargs)["Entries"]
    return {e["Cidr"] for e in entries}


def test_prefix_list_stale_version_is_a_mismatch_and_changes_nothing(emulator: Emulator) -> None:
    client = ec2(emulator)
    pl_id = prefix_list(client, ["192.0.2.1/32"])
    # Someone else moves the list to version 2.
    client.modify_managed_prefix_list(
        PrefixListId=pl_id, CurrentVersion=1, AddEntries=[{"Cidr": "192.0.2.2/32"}]
    )
    # A writer that read version 1 must not have its change applied on top.
    err = error_of(
        client.modify_managed_prefix_list,
        PrefixListId=pl_id, CurrentVersion=1, RemoveEntries=[{"Cidr": "192.0.2.2/32"}],
    )
    assert err.response["Error"]["Code"] == "PrefixListVersionMismatch"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert described(client, pl_id)["Version"] == 2
    assert entry_cidrs(client, pl_id) == {"192.0.2.1/32", "192.0.2.2/32"}
    # The current version applies; without CurrentVersion the change is unconditional.
    client.modify_managed_prefix_list(
        PrefixListId=pl_id, CurrentVersion=2, RemoveEntries=[{"Cidr": "192.0.2.2/32"}]
    )
    client.modify_managed_prefix_list(PrefixListId=pl_id, AddEntries=[{"Cidr": "192.0.2.3/32"}])
    assert described(client, pl_id)["Version"] == 4
    assert entry_cidrs(client, pl_id) == {"192.0.2.1/32", "192.0.2.3/32"}
    assert entry_cidrs(client, pl_id, TargetVersion=2) == {"192.0.2.1/32", "192.0.2.2/32"}


def test_prefix_list_max_entries_is_enforced(emulator: Emulator) -> None:
    client = ec2(emulator)
    pl_id = prefix_list(client, ["192.0.2.1/32", "192.0.2.2/32"], max_entries=3)
    err = error_of(
        client.modify_managed_prefix_list,
        PrefixListId=pl_id, CurrentVersion=1,
        AddEntries=[{"Cidr": "192.0.2.3/32"}, {"Cidr": "192.0.2.4/32"}],
    )
    assert err.response["Error"]["Code"] == "PrefixListMaxEntriesExceeded"
    assert described(client, pl_id)["Version"] == 1
    assert entry_cidrs(client, pl_id) == {"192.0.2.1/32", "192.0.2.2/32"}
    # Swapping entries within the limit is fine (removals count first).
    client.modify_managed_prefix_list(
        PrefixListId=pl_id, CurrentVersion=1,
        AddEntries=[{"Cidr": "192.0.2.3/32"}, {"Cidr": "192.0.2.4/32"}],
        RemoveEntries=[{"Cidr": "192.0.2.1/32"}],
    )
    assert entry_cidrs(client, pl_id) == {"192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32"}
    err = error_of(client.create_managed_prefix_list, PrefixListName="x", AddressFamily="IPv4",
                   MaxEntries=1, Entries=[{"Cidr": "192.0.2.1/32"}, {"Cidr": "192.0.2.2/32"}])
    assert err.response["Error"]["Code"] == "PrefixListMaxEntriesExceeded"


def test_prefix_list_resize_is_its_own_call(emulator: Emulator) -> None:
    client = ec2(emulator)
    pl_id = prefix_list(client, ["192.0.2.1/32", "192.0.2.2/32"], max_entries=2)
    err = error_of(
        client.modify_managed_prefix_list,
        PrefixListId=pl_id, MaxEntries=3, AddEntries=[{"Cidr": "192.0.2.3/32"}],
    )
    assert err.response["Error"]["Code"] == "InvalidParameterCombination"
    err = error_of(client.modify_managed_prefix_list, PrefixListId=pl_id, MaxEntries=1)
    assert err.response["Error"]["Code"] == "InvalidParameterValue"
    client.modify_managed_prefix_list(PrefixListId=pl_id, MaxEntries=3)
    pl = described(client, pl_id)
    assert (pl["MaxEntries"], pl["Version"]) == (3, 1), "a resize is not a new version"
    client.modify_managed_prefix_list(
        PrefixListId=pl_id, CurrentVersion=1, AddEntries=[{"Cidr": "192.0.2.3/32"}]
    )
    assert len(entry_cidrs(client, pl_id)) == 3


def test_prefix_list_modify_keeps_the_name_and_checks_the_id(emulator: Emulator) -> None:
    client = ec2(emulator)
    pl_id = prefix_list(client, ["192.0.2.1/32"], name="customer-egress")
    client.modify_managed_prefix_list(
        PrefixListId=pl_id, CurrentVersion=1, AddEntries=[{"Cidr": "192.0.2.2/32"}]
    )
    assert described(client, pl_id)["PrefixListName"] == "customer-egress"
    client.modify_managed_prefix_list(PrefixListId=pl_id, PrefixListName="renamed")
    assert described(client, pl_id)["PrefixListName"] == "renamed"
    for call, kwargs in [
        (client.modify_managed_prefix_list, {"AddEntries": [{"Cidr": "192.0.2.9/32"}]}),
        (client.get_managed_prefix_list_entries, {}),
    ]:
        err = error_of(call, PrefixListId="pl-0000000000000000f", **kwargs)
        assert err.response["Error"]["Code"] == "InvalidPrefixListID.NotFound"


def test_prefix_list_takes_at_most_100_entries_per_request(emulator: Emulator) -> None:
    client = ec2(emulator)
    pl_id = prefix_list(client, [], max_entries=1000)
    many = [{"Cidr": f"10.0.{n // 256}.{n % 256}/32"} for n in range(101)]
    err = error_of(client.modify_managed_prefix_list, PrefixListId=pl_id, CurrentVersion=1, AddEntries=many)
    assert err.response["Error"]["Code"] == "InvalidParameterValue"
    client.modify_managed_prefix_list(PrefixListId=pl_id, CurrentVersion=1, AddEntries=many[:100])
    assert len(entry_cidrs(client, pl_id)) == 100


# ---- Regions ----------------------------------------------------------------


def region_names(client: Any, **kwargs: Any) -> set[str]:
    return {r["RegionName"] for r in client.describe_regions(**kwargs)["Regions"]}


def test_describe_regions_honours_all_regions_and_opt_in_status(emulator: Emulator) -> None:
    client = ec2(emulator)
    enabled = region_names(client)
    every = region_names(client, AllRegions=True)
    not_opted = region_names(
        client, AllRegions=True, Filters=[{"Name": "opt-in-status", "Values": ["not-opted-in"]}]
    )
    assert {"us-east-1", "eu-central-1", "eu-west-1"} <= enabled
    assert not_opted and not_opted.isdisjoint(enabled)
    assert every == enabled | not_opted
    assert not any(n.startswith(("us-gov-", "cn-")) for n in every)
    assert region_names(client, Filters=[{"Name": "opt-in-status", "Values": ["not-opted-in"]}]) == set()
    assert region_names(client, Filters=[{"Name": "region-name", "Values": ["eu-c*"]}]) == (
        {n for n in enabled if n.startswith("eu-c")}
    )
    assert region_names(client, RegionNames=["eu-west-1"]) == {"eu-west-1"}
    err = error_of(client.describe_regions, RegionNames=["xx-fake-1"])
    assert err.response["Error"]["Code"] == "InvalidParameterValue"


@pytest.mark.parametrize("kind", ["unknown", "not-opted-in"])
def test_request_to_disabled_region_is_auth_failure(emulator: Emulator, kind: str) -> None:
    if kind == "unknown":
        region = "xx-fake-1"
    else:
        region = sorted(
            region_names(
                ec2(emulator),
                AllRegions=True,
                Filters=[{"Name": "opt-in-status", "Values": ["not-opted-in"]}],
            )
        )[0]
    err = error_of(ec2(emulator, region).describe_nat_gateways)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert err.response["Error"]["Code"] == "AuthFailure"
    assert region in err.response["Error"]["Message"]



# ---- Regional NAT gateways, Elastic IPs, other accounts ---------------------


def test_regional_nat_gateway_has_no_subnet_and_zoned_addresses(emulator: Emulator) -> None:
    ips = ["198.51.100.21", "198.51.100.22"]
    gateway_id = emulator.seed.regional_nat_gateway(REGION, {"Name": "regional-proxy"}, ips=ips)
    zonal_id = emulator.seed.nat_gateway(REGION, {"Name": "zonal-proxy"}, ips=["198.51.100.23"])
    client = ec2(emulator)
    (gateway,) = client.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"]
    assert gateway["AvailabilityMode"] == "regional"
    assert "SubnetId" not in gateway
    assert gateway["VpcId"].startswith("vpc-")
    assert gateway["State"] == "available"
    addresses = gateway["NatGatewayAddresses"]
    assert [a["PublicIp"] for a in addresses] == ips
    assert [a["AvailabilityZone"] for a in addresses] == [REGION + "a", REGION + "b"]
    assert [a["IsPrimary"] for a in addresses] == [True, False]
    (zonal,) = client.describe_nat_gateways(NatGatewayIds=[zonal_id])["NatGateways"]
    assert zonal["AvailabilityMode"] == "zonal" and zonal["SubnetId"].startswith("subnet-")
    # Tag filters see it like any other gateway; its EIPs show as associated.
    assert nat_ids(client, Filters=[{"Name": "tag:Name", "Values": ["regional-*"]}]) == {gateway_id}
    eips = client.describe_addresses(PublicIps=ips)["Addresses"]
    assert all(e.get("AssociationId", "").startswith("eipassoc-") for e in eips)


def test_elastic_ips_tag_filters_and_association(emulator: Emulator) -> None:
    seed = emulator.seed
    loose = seed.elastic_ip(REGION, {"Name": "proxy-spare"}, ip="198.51.100.31")
    bound = seed.elastic_ip(REGION, {"Name": "proxy-live"}, ip="198.51.100.32", associate=True)
    seed.elastic_ip(REGION, {"Name": "database"}, ip="198.51.100.33")
    found = ec2(emulator).describe_addresses(Filters=[{"Name": "tag:Name", "Values": ["proxy-*"]}])
    by_id = {a["AllocationId"]: a for a in found["Addresses"]}
    assert set(by_id) == {loose, bound}
    assert "AssociationId" not in by_id[loose]
    assert by_id[bound]["AssociationId"].startswith("eipassoc-")
    assert by_id[bound]["NetworkInterfaceId"].startswith("eni-")


def test_other_accounts_are_reached_through_assume_role(emulator: Emulator) -> None:
    other = emulator.seed.in_account("222222222222")
    theirs = other.nat_gateway(REGION, {"Name": "proxy"}, ips=["198.51.100.41"])
    ours = emulator.seed.nat_gateway(REGION, {"Name": "proxy"}, ips=["198.51.100.42"])
    assert nat_ids(ec2(emulator)) == {ours}
    assert nat_ids(other.ec2(REGION)) == {theirs}
    # Faults and counters can be scoped to the account a request acts in.
    emulator.clear_requests()
    emulator.set_faults([{"account": "222222222222", "action": "DescribeNatGateways", "mode": "error",
                          "status": 403, "code": "UnauthorizedOperation"}])
    assert nat_ids(ec2(emulator)) == {ours}
    err = error_of(other.ec2(REGION).describe_nat_gateways)
    assert err.response["Error"]["Code"] == "UnauthorizedOperation"
    assert emulator.count(action="DescribeNatGateways", account="222222222222") >= 1
    assert emulator.count(action="DescribeNatGateways", account="123456789012") == 1


def described_gateways(client: Any) -> tuple[set[str], str]:
    """(NAT gateway ids, the answer's x-amzn-requestid) of one DescribeNatGateways."""
    answer = client.describe_nat_gateways(Filters=[{"Name": "tag:Name", "Values": ["proxy"]}])
    ids = {g["NatGatewayId"] for g in answer["NatGateways"]}
    return ids, answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_read_cache_answers_repeated_reads_until_anything_changes(emulator: Emulator) -> None:
    first = emulator.seed.nat_gateway(REGION, {"Name": "proxy"})
    client = ec2(emulator)
    emulator.clear_requests()
    ids, request_id = described_gateways(client)
    again, again_id = described_gateways(client)
    assert ids == again == {first}
    assert again_id != request_id, "every answer carries its own request id"
    assert emulator.requests()["read_cache_hits"] == 1
    # Another request (a write) reaches moto: the next read sees its effect.
    second = emulator.seed.nat_gateway(REGION, {"Name": "proxy"})
    assert described_gateways(client)[0] == {first, second}
    # Same request, other account, other region: never another's answer.
    other = emulator.seed.in_account("222222222222")
    assert described_gateways(other.ec2(REGION))[0] == set()
    assert described_gateways(ec2(emulator, OTHER_REGION))[0] == set()
    # Faults and counters still see a read that the cache would answer.
    emulator.set_faults([{"region": REGION, "action": "DescribeNatGateways", "mode": "error", "times": 1}])
    assert error_of(client.describe_nat_gateways,
                    Filters=[{"Name": "tag:Name", "Values": ["proxy"]}]).response["Error"]["Code"] == "Unavailable"
    emulator.clear_requests()
    assert described_gateways(client)[0] == {first, second}  # moto (AssumeRole above emptied the cache)
    assert described_gateways(client)[0] == {first, second}  # the cache
    assert emulator.requests()["read_cache_hits"] == 1
    assert emulator.count(action="DescribeNatGateways") == 2
    # Switched off, every read reaches moto.
    emulator.set_read_cache(False)
    emulator.clear_requests()
    described_gateways(client)
    described_gateways(client)
    assert emulator.requests()["read_cache_hits"] == 0


# ---- Fault injection ----------------------------------------------------------


def test_error_fault_is_scoped_by_region_and_action(emulator: Emulator) -> None:
    emulator.set_faults([
        {"region": REGION, "action": "DescribeNatGateways", "mode": "error",
         "status": 503, "code": "Unavailable", "message": "injected for the test"},
    ])
    err = error_of(ec2(emulator, REGION).describe_nat_gateways)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert err.response["Error"] == {"Code": "Unavailable", "Message": "injected for the test"}
    ec2(emulator, REGION).describe_vpcs()  # other action: untouched
    ec2(emulator, OTHER_REGION).describe_nat_gateways()  # other region: untouched
    emulator.clear_faults()
    ec2(emulator, REGION).describe_nat_gateways()


def test_error_fault_times_runs_out(emulator: Emulator) -> None:
    emulator.set_faults([{"region": "*", "action": "*", "mode": "error", "code": "RequestLimitExceeded",
                          "status": 400, "times": 2}])
    client = ec2(emulator)
    codes = []
    for _ in range(3):
        try:
            client.describe_vpcs()
            codes.append("ok")
        except botocore.exceptions.ClientError as err:
            codes.append(err.response["Error"]["Code"])
    assert codes == ["RequestLimitExceeded", "RequestLimitExceeded", "ok"]


def timed(call: Any) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start


def test_delay_fault_slows_only_its_region(emulator: Emulator) -> None:
    emulator.set_faults([
        {"region": REGION, "action": "DescribeNatGateways", "mode": "delay", "delay_ms": 800},
    ])
    assert timed(ec2(emulator, REGION).describe_nat_gateways) >= 0.8
    assert timed(ec2(emulator, OTHER_REGION).describe_nat_gateways) < 0.5


def test_delayed_requests_to_different_regions_overlap(emulator: Emulator) -> None:
    regions = [REGION, OTHER_REGION, "eu-west-1"]
    emulator.set_faults([{"region": r, "mode": "delay", "delay_ms": 1000} for r in regions])
    clients = [ec2(emulator, r) for r in regions]  # built outside the timed part
    threads = [threading.Thread(target=c.describe_nat_gateways) for c in clients]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 2.5, f"3 x 1 s delays took {elapsed:.2f} s: not served concurrently"


def test_reset_fault_closes_the_connection_without_a_response(emulator: Emulator) -> None:
    emulator.set_faults([{"region": REGION, "action": "DescribeNatGateways", "mode": "reset"}])
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ec2(emulator, REGION).describe_nat_gateways()
    ec2(emulator, OTHER_REGION).describe_nat_gateways()  # other region: answered
    # On the wire: no byte of a response, and the connection is reset.
    host, port = emulator.url.removeprefix("http://").split(":")
    body = b"Action=DescribeNatGateways&Version=2016-11-15"
    auth = (
        f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/ec2/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    request = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        try:
            received = sock.recv(1024)  # b"" would be a graceful close (FIN)
        except ConnectionResetError:
            received = None
    assert received is None, f"expected a TCP reset, got {received!r}"


def raw_nat_request(emulator: Emulator, region: str) -> tuple[str, int, bytes]:
    """(host, port, bytes) of a signed-looking DescribeNatGateways request for `region`."""
    host, port = emulator.url.removeprefix("http://").split(":")
    body = b"Action=DescribeNatGateways&Version=2016-11-15"
    auth = (
        f"AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ec2/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    request = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return host, int(port), request


def test_drop_fault_never_answers_and_closes_at_its_bound(emulator: Emulator) -> None:
    emulator.set_faults([{"region": REGION, "action": "DescribeNatGateways", "mode": "drop", "delay_ms": 1500}])
    host, port, request = raw_nat_request(emulator, REGION)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        start = time.monotonic()
        # Held: not a byte for a second...
        sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            sock.recv(1024)
        # ...then, at the 1.5 s bound, a graceful close (FIN) without a response.
        sock.settimeout(10)
        assert sock.recv(1024) == b""
        elapsed = time.monotonic() - start
    assert 1.4 <= elapsed < 5, elapsed
    assert emulator.count(region=REGION, action="DescribeNatGateways") == 1
    ec2(emulator, OTHER_REGION).describe_nat_gateways()  # other region: answered


def test_drop_fault_client_gives_up_and_request_never_reaches_moto(emulator: Emulator) -> None:
    # Without delay_ms the hold is bounded by 120 s; a client with a 1 s read
    # timeout gives up long before that.
    emulator.set_faults([{"region": REGION, "action": "CreateVpc", "mode": "drop", "times": 1}])
    client = boto3.client(
        "ec2", region_name=REGION, endpoint_url=emulator.url,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=NO_RETRY.merge(botocore.config.Config(read_timeout=1, connect_timeout=5)),
    )
    start = time.monotonic()
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client.create_vpc(CidrBlock="10.9.0.0/16")
    assert time.monotonic() - start < 5
    # Unlike `delay`, a dropped request is never served, even later.
    time.sleep(0.5)
    vpcs = ec2(emulator).describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.9.0.0/16"]}])["Vpcs"]
    assert vpcs == []
    # `times` ran out: the next request is served.
    client.create_vpc(CidrBlock="10.9.0.0/16")
    assert emulator.count(region=REGION, action="CreateVpc") == 2


def test_drop_fault_releases_the_request_when_the_client_closes(emulator: Emulator) -> None:
    """The hold ends when the client goes away, long before the bound: the
    request is then closed unanswered and nothing is served afterwards."""
    emulator.set_faults([{"region": REGION, "action": "DescribeNatGateways", "mode": "drop", "delay_ms": 60000}])
    host, port, request = raw_nat_request(emulator, REGION)
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(request)
        deadline = time.monotonic() + 5
        while emulator.held() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.held() == 3
        socks[0].settimeout(0.2)
        with pytest.raises(socket.timeout):
            socks[0].recv(1024)  # held: no response
    finally:
        for sock in socks:
            sock.close()
    # The clients are gone: within about a second nothing is held any more.
    deadline = time.monotonic() + 5
    while emulator.held() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.held() == 0
    assert emulator.count(region=REGION, action="DescribeNatGateways") == 3
    emulator.clear_faults()
    assert nat_ids(ec2(emulator, REGION)) == set()


# ---- Counters and reset ------------------------------------------------------


def read_response(stream: Any) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers by lower-case name, body) of one Content-Length response."""
    status = stream.readline().decode().strip()
    headers = {}
    while (line := stream.readline().decode().strip()):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers["content-length"]))


def test_connection_is_kept_for_the_next_request(emulator: Emulator) -> None:
    emulator.seed.nat_gateway(REGION, {"Name": "kept"})
    host, port, request = raw_nat_request(emulator, REGION)
    with socket.create_connection((host, port), timeout=10) as sock, sock.makefile("rb") as stream:
        for _ in range(3):  # three requests, one connection, each answered in full
            sock.sendall(request)
            status, headers, body = read_response(stream)
            assert status == "HTTP/1.1 200 OK"
            assert headers.get("connection", "").lower() != "close"
            assert body.count(b"<natGatewayId>") == 1
        # A request asking to close is answered, then the connection ends.
        sock.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        status, headers, _ = read_response(stream)
        assert (status, headers["connection"]) == ("HTTP/1.1 200 OK", "close")
        assert stream.read() == b""
    assert emulator.count(region=REGION, action="DescribeNatGateways") == 4


def test_expect_100_continue_is_answered_before_the_body(emulator: Emulator) -> None:
    host, port = emulator.url.removeprefix("http://").split(":")
    body = b'[{"region": "%s", "action": "DescribeVpcs", "mode": "error"}]' % REGION.encode()
    head = (f"POST /_testbed/faults HTTP/1.1\r\nHost: {host}:{port}\r\nExpect: 100-continue\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock, sock.makefile("rb") as stream:
        sock.sendall(head)
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"  # before a byte of the body
        assert stream.readline() == b"\r\n"
        sock.sendall(body)
        status, headers, _ = read_response(stream)  # (and no second 100 Continue)
        assert status == "HTTP/1.1 200 OK"
        assert headers.get("connection", "").lower() != "close"
    assert [f["action"] for f in emulator.faults()] == ["DescribeVpcs"]


def test_chunked_request_is_answered_and_closes_the_connection(emulator: Emulator) -> None:
    host, port = emulator.url.removeprefix("http://").split(":")
    request = f"GET /_testbed/requests HTTP/1.1\r\nHost: {host}:{port}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock, sock.makefile("rb") as stream:
        sock.sendall(request.encode())
        status, headers, answer = read_response(stream)
        assert (status, headers["connection"]) == ("HTTP/1.1 200 OK", "close")
        assert b'"total"' in answer
        assert stream.read() == b""


def test_request_counters_by_region_service_action(emulator: Emulator) -> None:
    emulator.set_faults([{"region": REGION, "action": "DescribeVpcs", "mode": "error", "times": 1}])
    error_of(ec2(emulator, REGION).describe_vpcs)  # a faulted request counts too
    ec2(emulator, REGION).describe_nat_gateways()
    ec2(emulator, REGION).describe_nat_gateways()
    ec2(emulator, OTHER_REGION).describe_vpcs()
    rows = {(r["region"], r["service"], r["action"]): r["count"] for r in emulator.requests()["requests"]}
    assert rows == {
        (REGION, "ec2", "DescribeVpcs"): 1,
        (REGION, "ec2", "DescribeNatGateways"): 2,
        (OTHER_REGION, "ec2", "DescribeVpcs"): 1,
    }
    assert emulator.requests()["total"] == 4
    assert emulator.count(action="DescribeNatGateways") == 2
    emulator.clear_requests()
    assert emulator.requests() == {"requests": [], "total": 0, "read_cache_hits": 0}


def test_moto_reset_wipes_state_faults_and_counters(emulator: Emulator) -> None:
    emulator.seed.nat_gateway(REGION, {"Name": "x"})
    emulator.set_faults([{"region": "*", "action": "DescribeNatGateways", "mode": "error"}])
    emulator.reset()
    assert emulator.requests()["total"] == 0
    assert nat_ids(ec2(emulator)) == set()  # no fault, no gateway


def test_invalid_fault_rules_are_rejected(emulator: Emulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        emulator.set_faults([{"mode": "explode"}])
    assert caught.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        emulator.set_faults([{"mode": "error", "regoin": "eu-central-1"}])

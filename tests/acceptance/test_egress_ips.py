"""Acceptance tests for the `allowlist_egress_ips` data source.

Each test drives a real Terraform (1.0.3 and 1.15.5, via the `terraform`
fixture) with our provider binary against the patched moto emulator, the way a
user would: write a config, run plan/apply, read the outputs and diagnostics.
The emulator's tag filters are patched to work like AWS, but the provider also
checks tags itself; `test_egress_ips_tags_checked_without_server_filtering`
proves the result does not depend on the emulator's filtering.
"""

from __future__ import annotations

import hashlib
import re

import pytest

import conftest

REGIONS = ["us-west-2", "eu-central-1", "ap-southeast-2"]

BODY = """\
data "allowlist_egress_ips" "proxies" {
  %(arguments)s
}

output "cidrs" { value = data.allowlist_egress_ips.proxies.cidrs }
output "public_ips" { value = data.allowlist_egress_ips.proxies.public_ips }
output "nat_gateways" { value = data.allowlist_egress_ips.proxies.nat_gateways }
output "sync_token" { value = data.allowlist_egress_ips.proxies.sync_token }
output "id" { value = data.allowlist_egress_ips.proxies.id }
"""


def config(arguments: str = 'tags = { Name = "*proxy*" }', regions: list[str] = REGIONS) -> str:
    return conftest.config(BODY % {"arguments": arguments}, egress_regions=regions)


def sync_token(cidrs: list[str]) -> str:
    """What the provider documents: SHA-256 over the sorted CIDRs, one per line."""
    return hashlib.sha256("".join(c + "\n" for c in cidrs).encode()).hexdigest()


def one_line(text: str) -> str:
    """Terraform wraps diagnostics; compare on one line with single spaces."""
    return re.sub(r"[\s│]+", " ", text)


def seed_three_regions(emulator) -> dict[str, list[str]]:
    """Tagged, untagged, mistagged and deleted gateways in three regions plus
    one in a region nobody asks about. Returns the IPs that must be found."""
    seed = emulator.seed
    want = {
        # Two addresses on one gateway: both must be listed. 198.18.0.9 vs
        # 198.18.0.10 checks numeric, not lexical, ordering.
        "us-west-2": ["198.18.0.10", "198.18.0.9"],
        "eu-central-1": ["198.18.1.1"],
        "ap-southeast-2": ["198.18.2.1", "198.18.2.2"],
    }
    us = seed.nat_gateway("us-west-2", {"Name": "egress-proxy-a", "env": "prod"}, ips=want["us-west-2"])
    seed.nat_gateway("us-west-2", {}, ips=["203.0.113.1"])  # untagged
    seed.nat_gateway("us-west-2", {"Name": "database"}, ips=["203.0.113.2"])  # other Name
    seed.nat_gateway("us-west-2", {"name": "proxy"}, ips=["203.0.113.3"])  # key case differs
    eu = seed.nat_gateway("eu-central-1", {"Name": "proxy"}, ips=want["eu-central-1"])
    seed.nat_gateway("eu-central-1", {"Name": "old-proxy"}, ips=["203.0.113.4"], state="deleted")
    ap1 = seed.nat_gateway("ap-southeast-2", {"Name": "syd-proxy-1"}, ips=["198.18.2.2"])
    ap2 = seed.nat_gateway("ap-southeast-2", {"Name": "syd-proxy-2"}, ips=["198.18.2.1"])
    seed.nat_gateway("us-east-1", {"Name": "proxy-not-asked"}, ips=["203.0.113.5"])
    return {"ips": want, "ids": {"us-west-2": [us], "eu-central-1": [eu], "ap-southeast-2": [ap1, ap2]}}


def test_egress_ips_three_regions(terraform, emulator):
    seeded = seed_three_regions(emulator)
    terraform.write("main.tf", config())

    # Apply: the data source reads every region and the outputs hold the result.
    terraform.apply()
    out = {k: v["value"] for k, v in terraform.output().items()}
    expected_ips = ["198.18.0.9", "198.18.0.10", "198.18.1.1", "198.18.2.1", "198.18.2.2"]
    assert out["public_ips"] == expected_ips
    assert out["cidrs"] == [ip + "/32" for ip in expected_ips]
    assert out["sync_token"] == sync_token(out["cidrs"])

    # Every address of every matching gateway, with its gateway's details.
    gateways = out["nat_gateways"]
    assert [g["public_ip"] for g in gateways] == expected_ips
    for g in gateways:
        assert g["id"] in seeded["ids"][g["region"]]
        assert g["vpc_id"].startswith("vpc-") and g["subnet_id"].startswith("subnet-")
        assert g["allocation_id"].startswith("eipalloc-")
    us_west = [g for g in gateways if g["region"] == "us-west-2"]
    assert len(us_west) == 2 and us_west[0]["id"] == us_west[1]["id"]
    assert us_west[0]["allocation_id"] != us_west[1]["allocation_id"]

    # A second plan has nothing to do.
    assert terraform.plan_detailed() == 0


def test_egress_ips_sync_token_follows_the_set(terraform, emulator):
    seed = emulator.seed
    seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    terraform.write("main.tf", config(regions=["us-west-2"]))
    terraform.apply()
    first = terraform.output()["sync_token"]["value"]
    query_id = terraform.output()["id"]["value"]

    # Same set again: same token.
    terraform.apply()
    assert terraform.output()["sync_token"]["value"] == first

    # A new gateway: new token, same query id.
    seed.nat_gateway("us-west-2", {"Name": "proxy-2"}, ips=["198.18.0.2"])
    terraform.apply()
    out = terraform.output()
    assert out["cidrs"]["value"] == ["198.18.0.1/32", "198.18.0.2/32"]
    assert out["sync_token"]["value"] != first
    assert out["id"]["value"] == query_id


def test_egress_ips_wildcards_and_filters(terraform, emulator):
    seed = emulator.seed
    seed.nat_gateway("us-west-2", {"Name": "nat-a", "env": "prod"}, ips=["198.18.0.1"])
    seed.nat_gateway("us-west-2", {"Name": "nat-b", "env": "dev"}, ips=["198.18.0.2"])
    seed.nat_gateway("us-west-2", {"Name": "nat-ab", "env": "prod"}, ips=["198.18.0.3"])
    vpc_id, _ = seed.network("us-west-2")

    # `?` matches exactly one character; several tags must all match; a raw
    # EC2 filter narrows further.
    terraform.write(
        "main.tf",
        config(
            arguments=f"""
  regions = ["us-west-2"]
  tags    = {{ Name = "nat-?", env = "prod" }}
  filter {{
    name   = "vpc-id"
    values = ["{vpc_id}"]
  }}
""",
        ),
    )
    terraform.apply()
    assert terraform.output()["cidrs"]["value"] == ["198.18.0.1/32"]


def test_egress_ips_tags_checked_without_server_filtering(terraform, emulator):
    """With the emulator's tag filtering switched off (as in stock moto), the
    provider's own tag check still yields exactly the matching gateways."""
    seed = emulator.seed
    seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    seed.nat_gateway("us-west-2", {"Name": "other"}, ips=["198.18.0.2"])
    seed.nat_gateway("us-west-2", {}, ips=["198.18.0.3"])
    emulator.set_server_tag_filtering(False)
    try:
        # The emulator now really ignores tag filters...
        ec2 = emulator.client("ec2", "us-west-2")
        unfiltered = ec2.describe_nat_gateways(Filters=[{"Name": "tag:Name", "Values": ["*proxy*"]}])
        assert len(unfiltered["NatGateways"]) == 3
        # ...and the provider still returns only the gateway tagged Name=*proxy*.
        terraform.write("main.tf", config(regions=["us-west-2"]))
        terraform.apply()
        assert terraform.output()["cidrs"]["value"] == ["198.18.0.1/32"]
    finally:
        emulator.set_server_tag_filtering(True)


def test_egress_ips_all_regions(terraform, emulator):
    seed = emulator.seed
    seed.nat_gateway("sa-east-1", {"Name": "proxy"}, ips=["198.18.9.1"])
    seed.nat_gateway("ap-northeast-1", {"Name": "proxy"}, ips=["198.18.9.2"])
    terraform.write("main.tf", config(arguments='regions = ["all"]\n  tags = { Name = "proxy" }'))
    terraform.apply()
    out = terraform.output()
    assert out["cidrs"]["value"] == ["198.18.9.1/32", "198.18.9.2/32"]
    # Every enabled region was asked, and only those.
    enabled = {r["RegionName"] for r in emulator.client("ec2", "us-east-1").describe_regions()["Regions"]}
    asked = {
        row["region"]
        for row in emulator.requests()["requests"]
        if row["action"] == "DescribeNatGateways"
    }
    assert len(enabled) > 10
    assert asked == enabled


def test_egress_ips_region_failure_is_an_error_not_a_shorter_list(terraform, emulator):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    emulator.seed.nat_gateway("eu-central-1", {"Name": "proxy"}, ips=["198.18.1.1"])
    terraform.write("main.tf", config(regions=["us-west-2", "eu-central-1"]))

    # First a good apply, so a stale list exists in state.
    terraform.apply()
    assert len(terraform.output()["cidrs"]["value"]) == 2

    # eu-central-1 now refuses every DescribeNatGateways.
    emulator.set_faults([{
        "region": "eu-central-1", "action": "DescribeNatGateways", "mode": "error",
        "status": 403, "code": "UnauthorizedOperation", "message": "You are not authorized",
    }])
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy-2"}, ips=["198.18.0.2"])
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Unable to Look Up NAT Gateways in eu-central-1" in err
    assert "UnauthorizedOperation" in err
    assert "us-west-2 failed" not in err
    # Nothing was written: the outputs still hold the last good list.
    assert terraform.output()["cidrs"]["value"] == ["198.18.0.1/32", "198.18.1.1/32"]


def test_egress_ips_dropped_connections_fail_after_retries(terraform, emulator):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    emulator.set_faults([{"region": "ap-southeast-2", "action": "DescribeNatGateways", "mode": "reset"}])
    terraform.write("main.tf", config(regions=["us-west-2", "ap-southeast-2"]))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Unable to Look Up NAT Gateways in ap-southeast-2" in err
    # The SDK retried before giving up (4 attempts in all).
    assert emulator.count(region="ap-southeast-2", action="DescribeNatGateways") >= 4


def test_egress_ips_region_that_does_not_exist(terraform, emulator):
    terraform.write(
        "main.tf",
        config(arguments='regions = ["us-west-2", "xx-nowhere-9"]\n  tags = { Name = "*" }'),
    )
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Unable to Look Up NAT Gateways in xx-nowhere-9" in err
    assert "AuthFailure" in err
    # The diagnostic points at the regions argument in the config.
    assert 'regions = ["us-west-2", "xx-nowhere-9"]' in err


@pytest.mark.parametrize(
    "arguments, summary, pointed_at",
    [
        ('regions = ["us-west-2", "Not A Region"]', "Invalid Region", "regions ="),
        ('regions = ["all", "us-west-2"]', "Invalid Region List", "regions ="),
        ('regions = []', "No Regions", "regions ="),
        ('filter {\n    name = "state"\n    values = ["pending"]\n  }', "Invalid Filter", 'name = "state"'),
        ('filter {\n    name = "vpc-id"\n    values = []\n  }', "Invalid Filter", "values = []"),
        ("min_count = -1", "Invalid min_count", "min_count = -1"),
    ],
    ids=["bad-region", "all-plus-region", "empty-regions", "state-filter", "empty-filter-values", "negative-min"],
)
def test_egress_ips_bad_arguments_fail_at_plan(terraform, emulator, arguments, summary, pointed_at):
    terraform.write("main.tf", config(arguments=arguments))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert f"Error: {summary}" in err
    assert pointed_at in err, "the diagnostic shows the offending line"
    # Validation happens before any AWS call.
    assert emulator.count(action="DescribeNatGateways") == 0


def test_egress_ips_min_count(terraform, emulator):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    terraform.write("main.tf", config(arguments='tags = { Name = "proxy" }\n  min_count = 2', regions=["us-west-2"]))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Too Few Egress Addresses" in err
    assert "Found 1 distinct addresses" in err and "min_count = 2" in err

    # One more gateway meets the minimum.
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.2"])
    terraform.apply()
    assert len(terraform.output()["cidrs"]["value"]) == 2


def test_egress_ips_bad_provider_configuration(terraform, emulator):
    terraform.write(
        "main.tf",
        config(regions=["us-west-2"]).replace(
            'egress_regions = ["us-west-2"]', 'egress_regions = ["us-west-2"]\n  max_ttl = "0s"'
        ),
    )
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Invalid Duration" in err and 'max_ttl = "0s"' in err

"""Acceptance tests for the whole estate: egress IPs across AWS accounts and
from Elastic IPs, in the `allowlist_egress_ips` data source (Terraform 1.0.3
and 1.15.5) and in `allowlist-publisher publish` / `sweep`.

The emulator lands credentials from AssumeRole in the role's account, so what
the seed creates through `seed.in_account(ID)` is invisible from the default
account: a result holding it proves the provider really reached that account.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

import conftest
from testbed.seed import DEFAULT_ACCOUNT, role_arn

REGIONS = ["us-west-2", "eu-central-1"]
OTHER_A = "222222222222"
OTHER_B = "333333333333"
ROLE_A = role_arn(OTHER_A)
ROLE_B = role_arn(OTHER_B)

OUTPUTS = """
output "cidrs" { value = data.allowlist_egress_ips.all.cidrs }
output "addresses" { value = data.allowlist_egress_ips.all.addresses }
output "nat_gateways" { value = data.allowlist_egress_ips.all.nat_gateways }
output "sync_token" { value = data.allowlist_egress_ips.all.sync_token }
"""


def data_source(arguments: str, regions: list[str] = REGIONS) -> str:
    body = 'data "allowlist_egress_ips" "all" {\n  regions = %s\n  tags = { Name = "*proxy*" }\n%s\n}\n' % (
        json.dumps(regions), arguments)
    return body + OUTPUTS


def accounts_block(*roles: str) -> str:
    return "".join(f'  account {{ role_arn = "{r}" }}\n' for r in roles)


def one_line(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text)


def seed_estate(emulator) -> dict[str, dict[str, str]]:
    """Three accounts, each with tagged NAT gateways and tagged Elastic IPs (one
    unassociated) in two regions, plus decoys. Returns {ip: expected address
    fields} of everything the union must hold."""
    want: dict[str, dict[str, str]] = {}

    def expect(ip: str, **fields: object) -> None:
        assert ip not in want, ip
        want[ip] = fields

    for account, third in ((DEFAULT_ACCOUNT, 1), (OTHER_A, 2), (OTHER_B, 3)):
        seed = emulator.seed if account == DEFAULT_ACCOUNT else emulator.seed.in_account(account)
        for r, region in enumerate(REGIONS):
            base = f"198.18.{third}{r}"
            nat = seed.nat_gateway(region, {"Name": f"proxy-{account}"}, ips=[f"{base}.1", f"{base}.2"])
            expect(f"{base}.1", source="nat_gateway", resource_id=nat, account_id=account, region=region)
            expect(f"{base}.2", source="nat_gateway", resource_id=nat, account_id=account, region=region)
            bound = seed.elastic_ip(region, {"Name": "nlb-proxy"}, ip=f"{base}.3", associate=True)
            expect(f"{base}.3", source="elastic_ip", resource_id=bound, account_id=account, region=region,
                   associated=True)
            # Decoys in every account and region: other tags, no tags, a deleted gateway.
            seed.nat_gateway(region, {"Name": "database"}, ips=[f"203.0.{third}{r}.1"])
            seed.elastic_ip(region, {"Name": "bastion"}, ip=f"203.0.{third}{r}.2", associate=True)
            seed.elastic_ip(region, {}, ip=f"203.0.{third}{r}.3")
            seed.nat_gateway(region, {"Name": "old-proxy"}, ips=[f"203.0.{third}{r}.4"], state="deleted")
        # An Elastic IP allocated and tagged, not attached yet: announced before it carries traffic.
        spare = seed.elastic_ip("us-west-2", {"Name": "spare-proxy"}, ip=f"198.18.{third}9.1")
        expect(f"198.18.{third}9.1", source="elastic_ip", resource_id=spare, account_id=account,
               region="us-west-2", associated=False)
        # Outside the regions asked.
        seed.nat_gateway("us-east-1", {"Name": "proxy"}, ips=[f"203.0.{third}9.9"])
    # A regional NAT gateway (no subnet) whose Elastic IPs are tagged too: each address once.
    other = emulator.seed.in_account(OTHER_A)
    regional = other.regional_nat_gateway("eu-central-1", {"Name": "regional-proxy"}, ips=["198.18.28.1", "198.18.28.2"])
    ec2 = other.ec2("eu-central-1")
    for address in ec2.describe_addresses(PublicIps=["198.18.28.1", "198.18.28.2"])["Addresses"]:
        ec2.create_tags(Resources=[address["AllocationId"]], Tags=[{"Key": "Name", "Value": "regional-proxy"}])
    for ip in ("198.18.28.1", "198.18.28.2"):
        expect(ip, source="nat_gateway", resource_id=regional, account_id=OTHER_A, region="eu-central-1",
               subnet_id=None)
    return want


def ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(p) for p in ip.split("."))


def assert_addresses(addresses: list[dict], want: dict[str, dict]) -> None:
    """Every wanted address exactly once, with its fields; nothing else."""
    ips = [a["public_ip"] for a in addresses]
    assert ips == sorted(want, key=ip_key), "each address once, sorted numerically"
    for a in addresses:
        expected = want[a["public_ip"]]
        assert a["cidr"] == a["public_ip"] + "/32"
        for field in ("source", "resource_id", "account_id", "region"):
            assert a[field] == expected[field], (a, field)
        if a["source"] == "nat_gateway":
            assert a["associated"] is True
            assert a["vpc_id"].startswith("vpc-")
            assert a["allocation_id"].startswith("eipalloc-")
            if "subnet_id" in expected:
                assert a["subnet_id"] is None, a
            else:
                assert a["subnet_id"].startswith("subnet-"), a
        else:
            assert a["associated"] is expected["associated"], a
            assert a["allocation_id"] == a["resource_id"]
            assert a["vpc_id"] is None


# --------------------------------------------------------------------------
# The data source
# --------------------------------------------------------------------------


def test_egress_ips_three_accounts_nat_gateways_and_elastic_ips(terraform, emulator):
    want = seed_estate(emulator)
    terraform.write("main.tf", conftest.config(data_source(
        'sources = ["nat_gateway", "elastic_ip"]\n  include_current_account = true\n'
        + accounts_block(ROLE_A, ROLE_B))))
    emulator.clear_requests()

    # Apply: the union of three accounts, two regions and two sources, every address once.
    terraform.apply()
    out = {k: v["value"] for k, v in terraform.output().items()}
    assert_addresses(out["addresses"], want)
    assert out["cidrs"] == [ip + "/32" for ip in sorted(want, key=ip_key)]
    # nat_gateways keeps its shape: the gateways' addresses only.
    gateways = out["nat_gateways"]
    assert [g["public_ip"] for g in gateways] == [a["public_ip"] for a in out["addresses"]
                                                  if a["source"] == "nat_gateway"]
    assert all(set(g) == {"id", "region", "vpc_id", "subnet_id", "public_ip", "allocation_id"} for g in gateways)
    # The other accounts were reached through their roles, the default account directly.
    assert emulator.count(action="DescribeNatGateways", account=OTHER_A) >= 2
    assert emulator.count(action="DescribeAddresses", account=OTHER_B) >= 2
    assert emulator.count(action="AssumeRole") >= 2

    # A second plan has nothing to do.
    assert terraform.plan_detailed() == 0


def test_egress_ips_other_accounts_only_by_default(terraform, emulator):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    emulator.seed.in_account(OTHER_A).nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.2"])
    # With account blocks and no include_current_account, the current account is left out.
    terraform.write("main.tf", conftest.config(data_source(accounts_block(ROLE_A), regions=["us-west-2"])))
    terraform.apply()
    addresses = terraform.output()["addresses"]["value"]
    assert [(a["public_ip"], a["account_id"]) for a in addresses] == [("198.18.0.2", OTHER_A)]


def test_egress_ips_failing_account_is_named_and_gives_no_list(terraform, emulator):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    emulator.seed.in_account(OTHER_A).nat_gateway("eu-central-1", {"Name": "proxy"}, ips=["198.18.0.2"])
    terraform.write("main.tf", conftest.config(data_source(
        "include_current_account = true\n" + accounts_block(ROLE_A, ROLE_B))))
    terraform.apply()
    assert len(terraform.output()["cidrs"]["value"]) == 2

    # One account's calls in one region now fail: the read fails naming account and region.
    emulator.set_faults([{"account": OTHER_A, "region": "eu-central-1", "action": "DescribeNatGateways",
                          "mode": "error", "status": 403, "code": "UnauthorizedOperation"}])
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert f"Unable to Look Up NAT Gateways in eu-central-1 (account {OTHER_A})" in err, err
    assert f"account {OTHER_A} (role {ROLE_A})" in err and "UnauthorizedOperation" in err, err
    assert err.count("Error: ") == 1, err
    assert "No list is produced" in err

    # A refused AssumeRole: one error per account, naming the account and the role.
    emulator.clear_requests()
    emulator.set_faults([{"service": "sts", "action": "AssumeRole", "mode": "error", "status": 403,
                          "code": "AccessDenied", "message": "not authorized to perform sts:AssumeRole"}])
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    for account, role in ((OTHER_A, ROLE_A), (OTHER_B, ROLE_B)):
        assert f"Unable to Assume Role in Account {account}" in err, err
        assert f"account {account} (role {role}): AssumeRole in us-east-1 failed: AccessDenied" in err, err
    assert "trust policy" in err
    assert emulator.count(action="DescribeNatGateways", account=OTHER_A) == 0, "nothing asked without credentials"
    assert emulator.count(action="DescribeNatGateways", account=OTHER_B) == 0


def test_egress_ips_bad_account_arguments_at_plan(terraform, emulator):
    terraform.write("main.tf", conftest.config("""
data "allowlist_egress_ips" "all" {
  regions = ["us-west-2"]
  sources = ["nat_gateway", "eip"]
  account { role_arn = "arn:aws:iam::222222222222:user/alice" }
  account { role_arn = "arn:aws:iam::333333333333:role/a" }
  account { role_arn = "arn:aws:iam::333333333333:role/b" }
  organization {
    role_name = "reader"
    exclude   = ["44"]
  }
}
"""))
    result = terraform.run("validate", "-json", "-no-color", check=False)
    assert result.rc == 1
    diagnostics = json.loads(result.stdout)["diagnostics"]
    found = sorted(d["summary"] for d in diagnostics if d["severity"] == "error")
    assert found == sorted([
        "Invalid Source", "Invalid Role ARN", "Duplicate Account", "Invalid Account ID",
        "Conflicting Account Selection",
    ]), diagnostics
    assert emulator.requests()["total"] == 0, "refused before any AWS call"


def test_egress_ips_organization(terraform, emulator):
    """Every ACTIVE account of the organization, the management account (the
    current one, also listed by ListAccounts) once, an excluded one left out."""
    org = emulator.client("organizations", "us-east-1")
    org.create_organization(FeatureSet="ALL")
    members = [org.create_account(Email=f"m{n}@example.com", AccountName=f"m{n}")["CreateAccountStatus"]["AccountId"]
               for n in range(3)]
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    for n, account in enumerate(members):
        emulator.seed.in_account(account).nat_gateway("us-west-2", {"Name": "proxy"}, ips=[f"198.18.0.{n + 2}"])
    terraform.write("main.tf", conftest.config(data_source(
        f'include_current_account = true\n  organization {{\n    role_name = "reader"\n'
        f'    exclude = ["{members[2]}"]\n  }}\n', regions=["us-west-2"])))
    emulator.clear_requests()
    terraform.apply()
    addresses = terraform.output()["addresses"]["value"]
    assert sorted((a["public_ip"], a["account_id"]) for a in addresses) == [
        ("198.18.0.1", DEFAULT_ACCOUNT), ("198.18.0.2", members[0]), ("198.18.0.3", members[1])]
    assert emulator.count(action="DescribeNatGateways", account=members[2]) == 0


def test_provider_assume_role_is_the_base(terraform, emulator):
    """With `assume_role` on the provider, the current account is the role's."""
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    emulator.seed.in_account("111111111111").nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.9"])
    deployer = role_arn("111111111111", "deployer")
    terraform.write("main.tf", conftest.config(
        data_source("", regions=["us-west-2"]),
        f'assume_role {{\n    role_arn = "{deployer}"\n    session_name = "ci-run-42"\n  }}'))
    terraform.apply()
    addresses = terraform.output()["addresses"]["value"]
    assert [(a["public_ip"], a["account_id"]) for a in addresses] == [("198.18.0.9", "111111111111")]


def test_assumed_credentials_are_never_logged(terraform, emulator):
    emulator.seed.in_account(OTHER_A).nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.2"])
    terraform.env = {**terraform.env, "TF_LOG_PROVIDER": "trace"}
    terraform.write("main.tf", conftest.config(data_source(accounts_block(ROLE_A), regions=["us-west-2"])))
    result = terraform.run("apply", "-auto-approve", "-no-color")
    logs = result.stdout + result.stderr
    assert "AssumeRole" in logs or "aws call" in logs, "the trace log is on"
    # moto's assumed credentials: ASIA… key ids and session tokens with a fixed prefix.
    assert "ASIA" not in logs and "FQoGZXIvYXdzEBYaD" not in logs
    assert "SecretAccessKey" not in logs and "aws_session_token" not in logs.lower()


# --------------------------------------------------------------------------
# The publisher
# --------------------------------------------------------------------------


def test_publish_three_accounts_is_the_union(publisher, emulator, tmp_path):
    want = seed_estate(emulator)
    out = tmp_path / "ip-ranges.json"
    emulator.clear_requests()
    args = ["publish", "--regions", ",".join(REGIONS), "--tag", "Name=*proxy*",
            "--source", "nat-gateway,elastic-ip", "--include-current-account",
            "--assume-role", ROLE_A, "--assume-role", ROLE_B, "--out", str(out)]
    result = publisher.run(*args)
    assert result.rc == 0, result.stderr
    doc = json.loads(out.read_text())
    assert [p["ip_prefix"] for p in doc["prefixes"]] == [ip + "/32" for ip in sorted(want, key=ip_key)]
    assert all(set(p) == {"ip_prefix", "region", "service", "network_border_group"} for p in doc["prefixes"])
    assert {p["ip_prefix"]: p["region"] for p in doc["prefixes"]} == {ip + "/32": w["region"] for ip, w in want.items()}
    # One AssumeRole per account for 2 regions × 2 sources each.
    assert emulator.count(action="AssumeRole") == 2
    assert emulator.count(action="DescribeNatGateways", account=OTHER_B) == 2

    # The same through ALLOWLIST_ variables.
    env = {"ALLOWLIST_SOURCES": "nat-gateway,elastic-ip", "ALLOWLIST_ASSUME_ROLES": f"{ROLE_A},{ROLE_B}",
           "ALLOWLIST_INCLUDE_CURRENT_ACCOUNT": "true"}
    again = tmp_path / "again.json"
    result = publisher.run("publish", "--regions", ",".join(REGIONS), "--tag", "Name=*proxy*",
                           "--out", str(again), env=env)
    assert result.rc == 0, result.stderr
    assert json.loads(again.read_text())["prefixes"] == doc["prefixes"]


def test_publish_failing_account_exits_3_and_writes_nothing(publisher, emulator, tmp_path):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    emulator.seed.in_account(OTHER_A).nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.2"])
    out = tmp_path / "ip-ranges.json"
    args = ["publish", "--regions", "us-west-2", "--tag", "Name=*proxy*", "--include-current-account",
            "--assume-role", ROLE_A, "--out", str(out)]
    assert publisher.run(*args).rc == 0
    before = out.read_bytes()
    assert json.loads(before)["prefixes"][1]["ip_prefix"] == "198.18.0.2/32"

    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy-2"}, ips=["198.18.0.3"])
    for fault in (
        {"account": OTHER_A, "action": "DescribeNatGateways", "mode": "error", "status": 403,
         "code": "UnauthorizedOperation"},
        {"action": "AssumeRole", "mode": "error", "status": 403, "code": "AccessDenied"},
    ):
        emulator.set_faults([fault])
        result = publisher.run(*args, "--force")
        assert result.rc == 3, result.stderr
        assert f"account {OTHER_A}" in result.stderr and fault["code"] in result.stderr, result.stderr
        assert out.read_bytes() == before, "the document is byte-identical"


def test_publisher_account_flags_are_checked(publisher, emulator):
    for args, flag in (
        (["--assume-role", "arn:aws:iam::222222222222:user/alice"], "--assume-role"),
        (["--assume-role", f"{ROLE_A},{role_arn(OTHER_A, 'other')}"], "--assume-role"),
        (["--organization-role", "reader", "--exclude-account", "12"], "--exclude-account"),
        (["--organization-role", "reader", "--assume-role", ROLE_A], "--organization-role"),
        (["--source", "eip"], "--source"),
    ):
        result = publisher.run("publish", "--regions", "us-west-2", "--out", "-", *args)
        assert result.rc == 2, (args, result.stderr)
        assert flag in result.stderr, (args, result.stderr)
    assert emulator.requests()["total"] == 0


def test_sweep_two_assumed_accounts(publisher, emulator):
    now = datetime.now(timezone.utc)
    past = emulator.seed.rfc3339(now - timedelta(hours=1))
    future = emulator.seed.rfc3339(now + timedelta(hours=6))
    seeded = {}
    for account in (OTHER_A, OTHER_B):
        seed = emulator.seed.in_account(account)
        group = seed.security_group("us-west-2", "bastion")
        expired = seed.managed_rule("us-west-2", group, "198.51.100.1/32", 22, past)
        live = seed.managed_rule("us-west-2", group, "198.51.100.2/32", 22, future, grant_id="grant-00000000000000b1")
        hand_made = seed.ingress_rule("us-west-2", group, "198.51.100.3/32", 22)
        seeded[account] = (seed, group, expired, {live, hand_made})
    # The default account's own expired rule is not swept: it is not asked.
    own_group = emulator.seed.security_group("us-west-2", "bastion")
    own_expired = emulator.seed.managed_rule("us-west-2", own_group, "198.51.100.1/32", 22, past)

    result = publisher.run("sweep", "--regions", "us-west-2", "--assume-role", f"{ROLE_A},{ROLE_B}")
    assert result.rc == 0, result.stderr
    for account, (seed, group, expired, kept) in seeded.items():
        rules = seed.ec2("us-west-2").describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
        ids = {r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]}
        assert expired not in ids, account
        assert kept <= ids, account
    own = emulator.seed.ec2("us-west-2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [own_group]}])["SecurityGroupRules"]
    assert own_expired in {r["SecurityGroupRuleId"] for r in own}

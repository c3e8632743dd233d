"""Acceptance tests for the `allowlist_temporary_ingress` resource.

Real Terraform (1.0.3 and 1.15.5) with our provider against the emulator.
The caller's IP comes from a loopback stand-in for checkip (`my_ip`); time is
moved forward between Terraform runs with ALLOWLIST_CLOCK_OFFSET, the
provider's testing clock. After each step the emulator is asked what really
exists: the rules, their tags, and that they are gone after destroy.
"""

from __future__ import annotations

import json
import re

import pytest

import conftest

REGION = "us-east-1"  # the provider's home region in the test environment
TAG_KEYS = {
    "allowlist:managed-by",
    "allowlist:grant-id",
    "allowlist:expires-at",
    "allowlist:created-at",
    "allowlist:granted-by",
}


def config(my_ip, body: str, provider: str = "") -> str:
    """One grant, `oncall`, with `body`; `provider` is a raw HCL line for the provider block."""
    return conftest.config(f"""\
resource "allowlist_temporary_ingress" "oncall" {{
  {body}
}}

output "grant" {{ value = allowlist_temporary_ingress.oncall }}
""", provider, ip_lookup_url=my_ip.url)


def grant_body(groups: list[str], ttl: str = "24h", extra: str = "") -> str:
    return f"""
  security_group_ids = {json.dumps(groups)}
  ports              = [22, 443]
  ttl                = "{ttl}"
  description        = "on-call access"
  tags               = {{ team = "sre" }}
  {extra}
"""


def ingress_rules(emulator, groups: list[str]) -> list[dict]:
    """Every ingress rule of `groups`, as the emulator reports it, tags as a dict."""
    ec2 = emulator.client("ec2", REGION)
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": groups}])[
        "SecurityGroupRules"
    ]
    out = []
    for r in rules:
        if r["IsEgress"]:
            continue
        r["TagMap"] = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
        out.append(r)
    return sorted(out, key=lambda r: (r["GroupId"], r["FromPort"], r.get("CidrIpv4", r.get("CidrIpv6", ""))))


def grant(terraform) -> dict:
    return terraform.output()["grant"]["value"]


def one_line(text: str) -> str:
    return re.sub(r"[\s│]+", " ", text)


@pytest.fixture
def groups(emulator) -> list[str]:
    return [
        emulator.seed.security_group(REGION, "bastion"),
        emulator.seed.security_group(REGION, "web"),
    ]


def test_temporary_ingress_create_plan_destroy(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups)))

    # Create: no cidr_blocks, so the detected IP is granted in both groups.
    terraform.apply()
    g = grant(terraform)
    assert g["cidr_blocks"] == ["198.51.100.77/32"]
    assert g["protocol"] == "tcp" and g["region"] == REGION and g["allow_world"] is False
    assert re.fullmatch(r"grant-[0-9a-f]{16}", g["id"])
    assert g["granted_by"].startswith("arn:aws:")
    assert len(g["rule_ids"]) == 4

    # The emulator holds exactly those rules, each with every tag of the contract.
    rules = ingress_rules(emulator, groups)
    assert sorted(r["SecurityGroupRuleId"] for r in rules) == sorted(g["rule_ids"])
    assert {(r["GroupId"], r["FromPort"], r["ToPort"], r["CidrIpv4"]) for r in rules} == {
        (sg, p, p, "198.51.100.77/32") for sg in groups for p in (22, 443)
    }
    for r in rules:
        assert TAG_KEYS <= set(r["TagMap"]), r["TagMap"]
        assert r["TagMap"]["allowlist:managed-by"] == "allowlist"
        assert r["TagMap"]["allowlist:grant-id"] == g["id"]
        assert r["TagMap"]["allowlist:expires-at"] == g["expires_at"]
        assert r["TagMap"]["allowlist:created-at"] == g["created_at"]
        assert r["TagMap"]["allowlist:granted-by"] == g["granted_by"]
        assert r["TagMap"]["team"] == "sre"
        assert r["Description"] == "on-call access"

    # A second plan has nothing to do (and refresh asked AWS once for this grant).
    emulator.clear_requests()
    assert terraform.plan_detailed() == 0
    assert emulator.count(action="DescribeSecurityGroupRules") == 1

    # Destroy revokes every rule.
    terraform.destroy()
    assert ingress_rules(emulator, groups) == []


def test_temporary_ingress_ipv6_caller_and_explicit_cidrs(terraform, emulator, my_ip, groups):
    my_ip.ip = "2001:db8::7"
    terraform.write("main.tf", config(my_ip, grant_body(groups[:1])))
    terraform.apply()
    assert grant(terraform)["cidr_blocks"] == ["2001:db8::7/128"]
    assert {r.get("CidrIpv6") for r in ingress_rules(emulator, groups[:1])} == {"2001:db8::7/128"}
    terraform.destroy()

    # Explicit CIDRs are used as given, IPv4 and IPv6 together; no IP lookup.
    hits = my_ip.hits
    terraform.write(
        "main.tf",
        config(my_ip, grant_body(groups[:1], extra='cidr_blocks = ["203.0.113.0/28", "2001:db8:1::/64"]')),
    )
    terraform.apply()
    assert my_ip.hits == hits
    assert len(ingress_rules(emulator, groups[:1])) == 4


def test_temporary_ingress_expiry_proposes_replacement(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups, ttl="1h")))
    terraform.apply()
    first = grant(terraform)

    # Two hours later (the provider's clock), the plan says it expired and replaces it.
    terraform.env = {**terraform.env, "ALLOWLIST_CLOCK_OFFSET": "2h"}
    plan = terraform.run("plan", "-no-color")
    out = one_line(plan.stdout + plan.stderr)
    assert "must be replaced" in out
    assert f"The grant {first['id']} expired at {first['expires_at']}" in out
    assert "Applying replaces it with a new grant lasting 1h" in out

    # Apply re-grants: new id and expiry, same access, old rules gone.
    terraform.apply()
    second = grant(terraform)
    assert second["id"] != first["id"]
    assert second["expires_at"] > first["expires_at"]
    rules = ingress_rules(emulator, groups)
    assert len(rules) == 4
    assert {r["TagMap"]["allowlist:grant-id"] for r in rules} == {second["id"]}
    assert terraform.plan_detailed() == 0


def test_temporary_ingress_ttl_change_is_in_place(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups, ttl="24h")))
    terraform.apply()
    first = grant(terraform)

    terraform.write("main.tf", config(my_ip, grant_body(groups, ttl="2h", extra='description = "extended"').replace(
        'description        = "on-call access"', "")))
    plan = terraform.run("plan", "-no-color").stdout
    assert "update in-place" in plan and "must be replaced" not in plan
    terraform.apply()
    second = grant(terraform)
    assert second["id"] == first["id"]
    assert second["rule_ids"] == first["rule_ids"], "no access gap: the same rules"
    assert second["created_at"] == first["created_at"]
    assert second["expires_at"] < first["expires_at"]
    for r in ingress_rules(emulator, groups):
        assert r["TagMap"]["allowlist:expires-at"] == second["expires_at"]
        assert r["Description"] == "extended"

    # Tags update in place too, including removal.
    terraform.write("main.tf", config(my_ip, grant_body(groups, ttl="2h").replace(
        'tags               = { team = "sre" }', 'tags = { env = "prod" }')))
    terraform.apply()
    for r in ingress_rules(emulator, groups):
        assert r["TagMap"].get("env") == "prod" and "team" not in r["TagMap"]
    assert grant(terraform)["rule_ids"] == first["rule_ids"]


def test_temporary_ingress_rules_deleted_by_hand(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups)))
    terraform.apply()
    ec2 = emulator.client("ec2", REGION)
    rules = ingress_rules(emulator, groups)

    # One rule gone: the grant is replaced.
    ec2.revoke_security_group_ingress(GroupId=rules[0]["GroupId"], SecurityGroupRuleIds=[rules[0]["SecurityGroupRuleId"]])
    result = terraform.run("plan", "-no-color")
    plan = one_line(result.stdout + result.stderr)
    assert "must be replaced" in plan
    assert "Ingress Rules Missing" in plan
    assert "1 of the grant's 4 rules no longer exist" in plan
    terraform.apply()
    assert len(ingress_rules(emulator, groups)) == 4

    # All rules gone: Terraform sees the grant deleted and plans a create.
    for r in ingress_rules(emulator, groups):
        ec2.revoke_security_group_ingress(GroupId=r["GroupId"], SecurityGroupRuleIds=[r["SecurityGroupRuleId"]])
    plan = terraform.run("plan", "-no-color").stdout
    assert "will be created" in plan
    terraform.apply()
    assert len(ingress_rules(emulator, groups)) == 4


def test_temporary_ingress_import(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups)))
    terraform.apply()
    g = grant(terraform)
    # The state is lost; the grant still exists in AWS. (Without the output
    # block: import does not write outputs, which a plan would report.)
    for name in ("terraform.tfstate", "terraform.tfstate.backup"):
        (terraform.workdir / name).unlink(missing_ok=True)
    terraform.write("main.tf", config(my_ip, grant_body(groups)).split('output "grant"')[0])

    terraform.run("import", "-no-color", "allowlist_temporary_ingress.oncall", f"{REGION}/{g['id']}")
    plan = terraform.run("plan", "-no-color", "-detailed-exitcode", check=False)
    assert plan.rc == 0, plan.stdout
    shown = json.loads(terraform.run("show", "-json").stdout)
    imported = shown["values"]["root_module"]["resources"][0]["values"]
    assert imported["rule_ids"] == g["rule_ids"]
    assert imported["expires_at"] == g["expires_at"] and imported["granted_by"] == g["granted_by"]

    missing = terraform.run("import", "-no-color", "allowlist_temporary_ingress.oncall", f"{REGION}/grant-0000000000000000", check=False)
    assert missing.rc == 1
    bad = terraform.run("import", "-no-color", "allowlist_temporary_ingress.other", "nonsense", check=False)
    assert bad.rc == 1


def test_temporary_ingress_failure_on_second_group_leaves_nothing(terraform, emulator, my_ip, groups):
    # The second group is at AWS's limit of 60 inbound rules.
    ec2 = emulator.client("ec2", REGION)
    ec2.authorize_security_group_ingress(
        GroupId=groups[1],
        IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
            "IpRanges": [{"CidrIp": f"192.0.2.{i}/32"} for i in range(60)],
        }],
    )
    before = ingress_rules(emulator, groups)
    terraform.write("main.tf", config(my_ip, grant_body(groups)))
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Unable to Authorize Ingress" in err
    assert "RulesPerSecurityGroupLimitExceeded" in err
    assert "No rule of this grant was left behind" in err
    # The first group got its rules and lost them again; nothing else changed.
    assert ingress_rules(emulator, groups) == before
    assert terraform.run("state", "list").stdout.strip() == ""


def test_temporary_ingress_replaces_an_expired_unswept_rule(terraform, emulator, my_ip, groups):
    ec2 = emulator.client("ec2", REGION)
    # An expired grant's rule that the sweep has not removed yet...
    ec2.authorize_security_group_ingress(
        GroupId=groups[0],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.77/32"}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": [
            {"Key": "allowlist:managed-by", "Value": "allowlist"},
            {"Key": "allowlist:grant-id", "Value": "grant-00000000000000aa"},
            {"Key": "allowlist:expires-at", "Value": "2020-01-01T00:00:00Z"},
            {"Key": "old", "Value": "tag"},
        ]}],
    )
    old = ingress_rules(emulator, groups[:1])[0]["SecurityGroupRuleId"]
    terraform.write("main.tf", config(my_ip, grant_body(groups[:1])))
    terraform.apply()
    g = grant(terraform)
    # ...is replaced by the new grant, not an error: revoked and created again under a new id
    # (a sweep that already listed the old id can then only revoke a rule that is gone).
    assert old not in g["rule_ids"] and len(g["rule_ids"]) == 2
    rules = ingress_rules(emulator, groups[:1])
    assert old not in [r["SecurityGroupRuleId"] for r in rules]
    replaced = next(r for r in rules if r.get("CidrIpv4") == "198.51.100.77/32")
    assert replaced["SecurityGroupRuleId"] in g["rule_ids"]
    assert replaced["TagMap"]["allowlist:grant-id"] == g["id"]
    assert replaced["TagMap"]["allowlist:expires-at"] == g["expires_at"]
    assert "old" not in replaced["TagMap"]
    assert replaced["Description"] == "on-call access"
    assert len(rules) == 2


def test_temporary_ingress_never_takes_over_an_unmanaged_rule(terraform, emulator, my_ip, groups):
    ec2 = emulator.client("ec2", REGION)
    # A hand-made, untagged rule identical to one the grant wants, in the second group.
    ec2.authorize_security_group_ingress(
        GroupId=groups[1],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "198.51.100.77/32"}]}],
    )
    before = ingress_rules(emulator, groups)
    terraform.write("main.tf", config(my_ip, grant_body(groups)))
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False)
    assert result.rc == 1
    assert "allowlist does not manage" in one_line(result.stderr)
    assert ingress_rules(emulator, groups) == before


@pytest.mark.parametrize(
    "change, provider, summary, pointed_at",
    [
        ('cidr_blocks = ["0.0.0.0/0"]', "", "Invalid CIDR Block", 'cidr_blocks = ["0.0.0.0/0"]'),
        ('cidr_blocks = ["::/0"]', "", "Invalid CIDR Block", 'cidr_blocks = ["::/0"]'),
        ('cidr_blocks = ["10.0.0.1/8"]', "", "Invalid CIDR Block", '"10.0.0.0/8"'),
        ('ttl = "0s"', "", "Invalid Duration", 'ttl = "0s"'),
        ('ttl = "48h"', 'max_ttl = "24h"', "TTL Too Long", 'ttl = "48h"'),
        ("ports = [22, 70000]", "", "Invalid Port", "ports = [22, 70000]"),
        ('port_ranges = ["9000-8000"]', "", "Invalid Port Range", 'port_ranges = ["9000-8000"]'),
        ('protocol = "gre"', "", "Invalid Protocol", 'protocol = "gre"'),
        ('security_group_ids = ["sg-nope"]', "", "Invalid Security Group ID", 'security_group_ids = ["sg-nope"]'),
        ('security_group_ids = ["sg-0123456789abcdef0"]', "", "Security Group Not Found", "security_group_ids"),
        ('tags = { "allowlist:expires-at" = "never" }', "", "Invalid Tag Key", "tags"),
        ('description = "tab\\there"', "", "Invalid Description", "description"),
    ],
    ids=["world-v4", "world-v6", "host-bits", "ttl-zero", "ttl-over-max", "port-70000", "range-reversed",
         "protocol", "group-id-syntax", "group-missing", "reserved-tag", "description-chars"],
)
def test_temporary_ingress_bad_input_fails_at_plan(terraform, emulator, my_ip, groups, change, provider, summary, pointed_at):
    body = grant_body(groups)
    key = change.split("=")[0].strip()
    body = "\n".join(line for line in body.splitlines() if line.split("=")[0].strip() != key) + "\n  " + change
    terraform.write("main.tf", config(my_ip, body, provider))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1, result.stdout
    err = one_line(result.stderr)
    assert f"Error: {summary}" in err
    assert pointed_at in err
    # Nothing was authorized.
    assert emulator.count(action="AuthorizeSecurityGroupIngress") == 0


def test_temporary_ingress_world_is_allowed_only_when_asked(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups[:1], extra='cidr_blocks = ["0.0.0.0/0"]\n  allow_world = true')))
    terraform.apply()
    assert {r["CidrIpv4"] for r in ingress_rules(emulator, groups[:1])} == {"0.0.0.0/0"}


def test_temporary_ingress_refresh_costs_one_describe_per_region(terraform, emulator, my_ip, groups):
    terraform.write(
        "main.tf",
        config(my_ip, "").replace(
            'resource "allowlist_temporary_ingress" "oncall" {\n  \n}',
            f"""resource "allowlist_temporary_ingress" "many" {{
  count              = 5
  security_group_ids = {json.dumps(groups)}
  ports              = [2000 + count.index]
  ttl                = "1h"
}}""",
        ).split('output "grant"')[0],
    )
    terraform.apply()
    assert len(ingress_rules(emulator, groups)) == 10

    # Refreshing five grants: one DescribeSecurityGroupRules for the region, not five.
    emulator.clear_requests()
    assert terraform.plan_detailed() == 0
    assert emulator.count(action="DescribeSecurityGroupRules") == 1

    # A rule removed by hand is still noticed through the shared snapshot.
    victim = ingress_rules(emulator, groups)[0]
    emulator.client("ec2", REGION).revoke_security_group_ingress(
        GroupId=victim["GroupId"], SecurityGroupRuleIds=[victim["SecurityGroupRuleId"]]
    )
    assert terraform.plan_detailed() == 2


def test_temporary_ingress_ip_is_detected_once_at_apply(terraform, emulator, my_ip, groups):
    """Regression: the IP used to be detected at plan and again in Terraform's
    apply-time re-plan, so a saved plan applied after the caller's IP changed
    failed with "Provider produced inconsistent final plan"."""
    terraform.write(
        "main.tf",
        config(my_ip, "").replace(
            'resource "allowlist_temporary_ingress" "oncall" {\n  \n}',
            f"""resource "allowlist_temporary_ingress" "three" {{
  count              = 3
  security_group_ids = {json.dumps(groups[:1])}
  ports              = [3000 + count.index]
  ttl                = "1h"
}}""",
        ).split('output "grant"')[0],
    )
    plan = terraform.run("plan", "-no-color", "-out=grant.tfplan")
    assert "cidr_blocks        = (known after apply)" in plan.stdout
    assert my_ip.hits == 0, "nothing is detected at plan"

    my_ip.ip = "198.51.100.88"  # the caller's network changed between plan and apply
    terraform.run("apply", "-no-color", "grant.tfplan")
    assert {r["CidrIpv4"] for r in ingress_rules(emulator, groups[:1])} == {"198.51.100.88/32"}
    assert my_ip.hits == 1, "one lookup for all grants of the apply"
    assert terraform.plan_detailed() == 0


@pytest.mark.parametrize(
    "before, after",
    [
        ("ports = [22, 443]", "ports = [22]"),
        ('cidr_blocks = ["203.0.113.7/32"]', 'cidr_blocks = ["203.0.113.8/32"]'),
        ('protocol = "tcp"', 'protocol = "udp"'),
    ],
    ids=["ports", "cidrs", "protocol"],
)
def test_temporary_ingress_access_changes_force_replacement(terraform, emulator, my_ip, groups, before, after):
    def body(change: str) -> str:
        return f"""
  security_group_ids = {json.dumps(groups[:1])}
  ttl                = "1h"
  {"ports = [22, 443]" if not change.startswith("ports") else ""}
  {change}
"""
    terraform.write("main.tf", config(my_ip, body(before)))
    terraform.apply()
    first = grant(terraform)

    terraform.write("main.tf", config(my_ip, body(after)))
    plan = terraform.run("plan", "-no-color").stdout
    assert "must be replaced" in plan and "# forces replacement" in plan
    terraform.apply()
    second = grant(terraform)
    assert second["id"] != first["id"]
    rules = ingress_rules(emulator, groups[:1])
    assert {r["TagMap"]["allowlist:grant-id"] for r in rules} == {second["id"]}
    assert sorted(r["SecurityGroupRuleId"] for r in rules) == sorted(second["rule_ids"])


def test_temporary_ingress_group_change_forces_replacement(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_body(groups[:1])))
    terraform.apply()
    terraform.write("main.tf", config(my_ip, grant_body(groups[1:])))
    plan = terraform.run("plan", "-no-color").stdout
    assert "must be replaced" in plan
    terraform.apply()
    assert ingress_rules(emulator, groups[:1]) == []
    assert len(ingress_rules(emulator, groups[1:])) == 2

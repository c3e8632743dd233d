"""`data "allowlist_grants"`: who holds access right now.

Real Terraform (1.0.3 and 1.15.5) against the emulator. Grants made by the resource, a rule made
before rules were shared (held by its `allowlist:grant-id`), a rule tagged by someone else and an
expired grant the sweep has not reached yet: the data source lists each grant once with its own
times, filters by group and expiry, and fails naming the region when one region fails. Paging over
thousands of rules is proven in test_many_rules.py; the ephemeral grant's `ephemeral = true` in
test_ephemeral_ingress.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import conftest
from test_reliability import one_line
from test_temporary_ingress import REGION, groups, ingress_rules  # noqa: F401

OTHER_REGION = "eu-west-1"


def instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def seed_rule(emulator, group: str, port: int, tags: dict[str, str]) -> str:
    """One rule on `group` from 192.0.2.9/32, made behind the provider's back, with `tags`."""
    response = emulator.client("ec2", REGION).authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                        "IpRanges": [{"CidrIp": "192.0.2.9/32"}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )
    return response["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def grants_config(my_ip, bastion: str, web: str, wide: bool = True) -> str:
    """Grants `narrow` and (with `wide`) `wide`, which share the bastion:22 rule, and two
    listings read after them."""
    made = ["narrow", "wide"] if wide else ["narrow"]
    after = ", ".join(f"allowlist_temporary_ingress.{name}" for name in made)
    wide_grant = f"""
resource "allowlist_temporary_ingress" "wide" {{
  security_group_ids = ["{bastion}", "{web}"]
  ports              = [22]
  port_ranges        = ["8000-8100"]
  ttl                = "1h"
}}
""" if wide else ""
    return conftest.config(f"""
{wide_grant}
resource "allowlist_temporary_ingress" "narrow" {{
  security_group_ids = ["{bastion}"]
  ports              = [22]
  ttl                = "2h"
}}

data "allowlist_grants" "live" {{
  depends_on = [{after}]
}}

data "allowlist_grants" "bastion_all" {{
  regions            = ["{REGION}"]
  security_group_ids = ["{bastion}"]
  include_expired    = true
  depends_on         = [{after}]
}}

output "live" {{ value = data.allowlist_grants.live.grants }}
output "bastion_all" {{ value = data.allowlist_grants.bastion_all.grants }}
output "ids" {{ value = {{ {", ".join(f"{n} = allowlist_temporary_ingress.{n}.id" for n in made)} }} }}
""", ip_lookup_url=my_ip.url)


def test_grants_lists_each_grant_with_its_own_hold(terraform, emulator, my_ip, groups):
    bastion, web = groups
    now = datetime.now(timezone.utc)
    # Left by others: a rule from before sharing (no holder tag) that expired and was not swept
    # yet, and a rule tagged by another tool. Only the first is ours.
    legacy = seed_rule(emulator, bastion, 2222, {
        "allowlist:managed-by": "allowlist", "allowlist:grant-id": "grant-00000000000000aa",
        "allowlist:expires-at": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "allowlist:granted-by": "arn:aws:iam::123456789012:user/old"})
    seed_rule(emulator, bastion, 2223, {"allowlist:managed-by": "someone-else",
                                        "allowlist:grant-id": "grant-00000000000000bb"})

    terraform.write("main.tf", grants_config(my_ip, bastion, web))
    terraform.apply()
    out = terraform.output()
    ids = out["ids"]["value"]
    live = {g["id"]: g for g in out["live"]["value"]}

    # The two live grants, and nothing expired or not ours.
    assert set(live) == {ids["wide"], ids["narrow"]}, live
    wide, narrow = live[ids["wide"]], live[ids["narrow"]]
    assert wide["security_group_ids"] == sorted([bastion, web])
    assert (wide["ports"], wide["port_ranges"], wide["protocol"]) == ([22], ["8000-8100"], "tcp")
    assert wide["cidr_blocks"] == ["198.51.100.77/32"] and wide["region"] == REGION
    assert len(wide["rule_ids"]) == 4 and len(narrow["rule_ids"]) == 1
    # The shared rule is listed under both grants, each with its own expiry.
    assert set(narrow["rule_ids"]) <= set(wide["rule_ids"])
    assert instant(narrow["expires_at"]) - instant(wide["expires_at"]) > timedelta(minutes=59)
    assert instant(wide["expires_at"]) - instant(wide["created_at"]) == timedelta(hours=1)
    for g in (wide, narrow):
        assert g["granted_by"].startswith("arn:aws:") and g["ephemeral"] is False and g["expired"] is False

    # Only the bastion's rules, expired grants included: the legacy rule's grant, marked expired.
    bastion_all = {g["id"]: g for g in out["bastion_all"]["value"]}
    assert set(bastion_all) == {ids["wide"], ids["narrow"], "grant-00000000000000aa"}
    old = bastion_all["grant-00000000000000aa"]
    assert (old["expired"], old["rule_ids"], old["ports"]) == (True, [legacy], [2222])
    assert old["granted_by"] == "arn:aws:iam::123456789012:user/old" and old["created_at"] is None
    assert bastion_all[ids["wide"]]["security_group_ids"] == [bastion]
    assert len(bastion_all[ids["wide"]]["rule_ids"]) == 2

    # After one grant goes, the shared rule is the other's alone, and the list says so.
    # (The listings depend on `narrow` alone now, which does not change: Terraform reads them
    # while planning, before `wide` is destroyed. The next run reads them afresh.)
    terraform.write("main.tf", grants_config(my_ip, bastion, web, wide=False))
    terraform.apply()
    assert [r["SecurityGroupRuleId"] for r in ingress_rules(emulator, [bastion])
            if r["FromPort"] == 22] == narrow["rule_ids"]
    terraform.apply()
    out = terraform.output()
    live = {g["id"]: g for g in out["live"]["value"]}
    assert ids["wide"] not in live and ids["narrow"] in live
    assert live[ids["narrow"]]["rule_ids"] == narrow["rule_ids"]


def test_grants_is_all_or_nothing_across_regions(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", conftest.config(f"""
data "allowlist_grants" "all" {{
  regions = ["{REGION}", "{OTHER_REGION}"]
}}

output "grants" {{ value = data.allowlist_grants.all.grants }}
""", ip_lookup_url=my_ip.url))
    emulator.set_faults([{"region": OTHER_REGION, "action": "DescribeSecurityGroupRules",
                          "mode": "error", "status": 403, "code": "UnauthorizedOperation"}])
    result = terraform.run("plan", "-no-color", check=False)
    out = one_line(result.stderr)
    assert result.rc == 1
    assert f"Unable to List Grants in {OTHER_REGION}" in out and "UnauthorizedOperation" in out
    assert "No list is returned unless every region answers" in out
    assert f"Unable to List Grants in {REGION}" not in out

    # Bad arguments are refused at plan, on the attribute, before any AWS call.
    emulator.clear_faults()
    emulator.clear_requests()
    terraform.write("main.tf", conftest.config("""
data "allowlist_grants" "bad" {
  security_group_ids = ["web"]
}
""", ip_lookup_url=my_ip.url))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    assert "Invalid Security Group ID" in one_line(result.stderr) and "security_group_ids" in result.stderr
    assert emulator.count(action="DescribeSecurityGroupRules") == 0

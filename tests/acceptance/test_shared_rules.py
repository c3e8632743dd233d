"""Grants that open the same permission share its one security-group rule.

AWS allows one rule per (group, protocol, ports, CIDR). A `create_before_destroy` replacement
and two resources opening the same port from the same IP must therefore share it: each grant
holding the rule tags it `allowlist:holder:<grant-id>`, the rule's `allowlist:expires-at` is the
latest holder's, a grant leaving only removes its own tags while another still holds the rule,
and the last holder to leave revokes it. Real Terraform against the emulator; the emulator is
asked which rules exist, who holds them and whether anything was revoked.
"""

from __future__ import annotations

import json

import conftest
from test_temporary_ingress import REGION, config, groups, ingress_rules  # noqa: F401

HOLDER = "allowlist:holder:"


def holders(rule: dict) -> set[str]:
    return {k[len(HOLDER):] for k in rule["TagMap"] if k.startswith(HOLDER)}


def markers(rule: dict) -> set[str]:
    return {k for k in rule["TagMap"] if k.startswith("allowlist:releasing:")}


def replaced_first(group: str, ports: list[int]) -> str:
    return f"""
  security_group_ids = {json.dumps([group])}
  ports              = {json.dumps(ports)}
  ttl                = "1h"
  description        = "replaced first"

  lifecycle {{
    create_before_destroy = true
  }}
"""


def by_port(rules: list[dict]) -> dict[int, dict]:
    return {r["FromPort"]: r for r in rules}


def test_create_before_destroy_shares_the_rule_it_replaces(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, replaced_first(groups[0], [6022])))
    terraform.apply()
    first = terraform.output()["grant"]["value"]
    [rule_6022] = first["rule_ids"]

    # More ports force a replacement; the new grant is made first and shares the 6022 rule with
    # the old one, which then leaves it: the rule is never revoked (no moment without access).
    terraform.write("main.tf", config(my_ip, replaced_first(groups[0], [6022, 6023])))
    emulator.clear_requests()
    terraform.apply()
    second = terraform.output()["grant"]["value"]
    assert second["id"] != first["id"]
    assert emulator.count(action="RevokeSecurityGroupIngress") == 0
    rules = by_port(ingress_rules(emulator, groups[:1]))
    assert sorted(rules) == [6022, 6023]
    assert rules[6022]["SecurityGroupRuleId"] == rule_6022
    assert sorted(second["rule_ids"]) == sorted(r["SecurityGroupRuleId"] for r in rules.values())
    for rule in rules.values():
        assert holders(rule) == {second["id"]}, rule["TagMap"]
        assert markers(rule) == set(), rule["TagMap"]
        assert rule["TagMap"]["allowlist:expires-at"] == second["expires_at"]
    assert terraform.plan_detailed() == 0

    # -replace of the same grant: every rule is shared, then left to the new grant.
    emulator.clear_requests()
    terraform.apply("-replace=allowlist_temporary_ingress.oncall")
    third = terraform.output()["grant"]["value"]
    assert third["id"] not in (first["id"], second["id"])
    assert emulator.count(action="RevokeSecurityGroupIngress") == 0
    assert sorted(third["rule_ids"]) == sorted(second["rule_ids"])
    for rule in ingress_rules(emulator, groups[:1]):
        assert holders(rule) == {third["id"]}, rule["TagMap"]
        assert rule["TagMap"]["allowlist:expires-at"] == third["expires_at"]
    assert terraform.plan_detailed() == 0

    terraform.destroy()
    assert ingress_rules(emulator, groups[:1]) == []


def two_grants(my_ip, group: str, oncall: bool = True) -> str:
    """A main.tf with grant `deploy` (ports 6022 and 6023, 2 h) and, if `oncall`, grant
    `oncall` (port 6022, 1 h)."""
    def grant(name: str, ports: list[int], ttl: str) -> str:
        return f"""
resource "allowlist_temporary_ingress" "{name}" {{
  security_group_ids = {json.dumps([group])}
  ports              = {json.dumps(ports)}
  ttl                = "{ttl}"
}}

output "{name}" {{ value = allowlist_temporary_ingress.{name} }}
"""
    body = grant("deploy", [6022, 6023], "2h")
    if oncall:
        body += grant("oncall", [6022], "1h")
    return conftest.config(body, ip_lookup_url=my_ip.url)


def test_grants_opening_the_same_port_share_it_until_the_last_one_goes(terraform, emulator, my_ip, groups, publisher):
    # Terraform creates both at once: whichever creates the 6022 rule second finds it there
    # (or is refused as a duplicate) and joins it.
    terraform.write("main.tf", two_grants(my_ip, groups[0]))
    terraform.apply()
    oncall = terraform.output()["oncall"]["value"]
    deploy = terraform.output()["deploy"]["value"]
    rules = by_port(ingress_rules(emulator, groups[:1]))
    assert sorted(rules) == [6022, 6023]
    assert holders(rules[6022]) == {oncall["id"], deploy["id"]}
    assert holders(rules[6023]) == {deploy["id"]}
    assert rules[6022]["TagMap"]["allowlist:expires-at"] == deploy["expires_at"], "the later expiry"
    assert oncall["rule_ids"] == [rules[6022]["SecurityGroupRuleId"]]
    assert sorted(deploy["rule_ids"]) == sorted(r["SecurityGroupRuleId"] for r in rules.values())
    assert terraform.plan_detailed() == 0

    # 90 minutes later oncall has expired, deploy has not: the sweep keeps the shared rule.
    swept = publisher.run("sweep", "--regions", REGION, env={"ALLOWLIST_CLOCK_OFFSET": "90m"})
    assert swept.rc == 0, swept.stderr
    assert sorted(by_port(ingress_rules(emulator, groups[:1]))) == [6022, 6023]

    # oncall leaves (removed from the configuration): deploy keeps the rule, now alone.
    terraform.write("main.tf", two_grants(my_ip, groups[0], oncall=False))
    emulator.clear_requests()
    terraform.apply()
    assert emulator.count(action="RevokeSecurityGroupIngress") == 0
    rules = by_port(ingress_rules(emulator, groups[:1]))
    assert sorted(rules) == [6022, 6023]
    assert holders(rules[6022]) == {deploy["id"]} and markers(rules[6022]) == set()
    assert rules[6022]["TagMap"]["allowlist:expires-at"] == deploy["expires_at"]

    # Three hours on, deploy has expired too: the sweep revokes both rules.
    swept = publisher.run("sweep", "--regions", REGION, env={"ALLOWLIST_CLOCK_OFFSET": "3h"})
    assert swept.rc == 0, swept.stderr
    assert ingress_rules(emulator, groups[:1]) == []


def test_the_last_holder_to_leave_revokes(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", two_grants(my_ip, groups[0]))
    terraform.apply()
    deploy = terraform.output()["deploy"]["value"]

    # Destroying deploy alone leaves 6022 to oncall and revokes 6023, which only deploy held.
    terraform.run("destroy", "-auto-approve", "-no-color", "-target=allowlist_temporary_ingress.deploy")
    rules = by_port(ingress_rules(emulator, groups[:1]))
    assert sorted(rules) == [6022]
    assert deploy["id"] not in holders(rules[6022])

    terraform.destroy()
    assert ingress_rules(emulator, groups[:1]) == []

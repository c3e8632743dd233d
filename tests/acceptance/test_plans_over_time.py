"""Plans that survive time: the plan of `allowlist_temporary_ingress` reads no clock.

Terraform plans a resource again when it applies; a plan saved at one time and applied after
the grant expired must be planned exactly as it was saved. Time enters only through a read
(refresh), which records `expired` in the state. The provider's clock is moved between runs with
ALLOWLIST_CLOCK_OFFSET; the emulator is asked what really changed.
"""

from __future__ import annotations

import json

import pytest

from test_temporary_ingress import REGION, config, grant, groups, ingress_rules, one_line  # noqa: F401

INCONSISTENT = "Provider produced inconsistent final plan"


def grant_with_variable_description(group: str, ttl: str = "1h") -> str:
    return f"""
  security_group_ids = {json.dumps([group])}
  ports              = [9222]
  ttl                = "{ttl}"
  description        = var.desc
}}

variable "desc" {{
  type    = string
  default = "one"
"""


def later(terraform, offset: str) -> None:
    """Every following run of `terraform` sees the provider's clock `offset` ahead."""
    terraform.env = {**terraform.env, "ALLOWLIST_CLOCK_OFFSET": offset}


def test_saved_plan_applied_after_expiry_does_what_it_planned(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_with_variable_description(groups[0])))
    terraform.apply()
    first = grant(terraform)

    # An in-place update, saved while the grant is live...
    plan = terraform.run("plan", "-no-color", "-var", "desc=two", "-out=tfplan")
    assert "update in-place" in plan.stdout and "must be replaced" not in plan.stdout

    # ...and applied two hours later, after the grant expired: Terraform plans it again at
    # apply, and that plan must agree with the saved one.
    later(terraform, "2h")
    applied = terraform.run("apply", "-no-color", "tfplan", check=False)
    assert applied.rc == 0, applied.stderr
    assert INCONSISTENT not in applied.stderr
    second = grant(terraform)
    assert second["id"] == first["id"] and second["rule_ids"] == first["rule_ids"]
    assert first["expired"] is False and second["expired"] is False, "as planned: read before expiry"
    assert [r["Description"] for r in ingress_rules(emulator, groups[:1])] == ["two"]

    # The next plan reads the grant, finds it expired, and knocks again.
    plan = terraform.run("plan", "-no-color", "-var", "desc=two")
    out = one_line(plan.stdout + plan.stderr)
    assert "must be replaced" in out
    assert f"The grant {first['id']} expired at {first['expires_at']}" in out
    terraform.apply("-var", "desc=two")
    third = grant(terraform)
    assert third["id"] != first["id"] and third["expired"] is False
    assert {r["TagMap"]["allowlist:grant-id"] for r in ingress_rules(emulator, groups[:1])} == {third["id"]}


def test_refresh_false_never_expires_a_grant(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", config(my_ip, grant_with_variable_description(groups[0])))
    terraform.apply()
    later(terraform, "2h")
    # Nothing is read, so nothing expires: no change.
    assert terraform.plan_detailed("-refresh=false") == 0
    # A plan that reads finds the grant expired.
    assert terraform.plan_detailed() == 2


# terraform_data (a value unknown until apply, with no other provider) needs Terraform >= 1.4.
@pytest.mark.parametrize("terraform", ["1.15.5"], indirect=True, ids=["tf1.15.5"])
def test_unknown_ttl_whose_value_is_already_past(terraform, emulator, my_ip, groups):
    body = f"""
  security_group_ids = {json.dumps(groups[:1])}
  ports              = [9222]
  ttl                = terraform_data.ttl.output
}}

variable "ttl" {{
  type    = string
  default = "24h"
}}

resource "terraform_data" "ttl" {{
  input = var.ttl
"""
    terraform.write("main.tf", config(my_ip, body))
    terraform.apply()
    first = grant(terraform)

    # Two hours later, a ttl of 1m, unknown at plan (terraform_data's output is recomputed):
    # created_at + 1m has passed. The apply moves the expiry as planned, says so, and records
    # the grant as expired; it does not fail with an inconsistent plan.
    later(terraform, "2h")
    applied = terraform.run("apply", "-auto-approve", "-no-color", "-var", "ttl=1m", check=False)
    assert applied.rc == 0, applied.stderr
    assert INCONSISTENT not in applied.stderr
    assert "has already passed" in one_line(applied.stdout + applied.stderr)
    second = grant(terraform)
    assert second["id"] == first["id"] and second["expired"] is True
    for rule in ingress_rules(emulator, groups[:1]):
        assert rule["TagMap"]["allowlist:expires-at"] == second["expires_at"] < first["expires_at"]

    # The next apply knocks again.
    terraform.apply("-var", "ttl=1m")
    third = grant(terraform)
    assert third["id"] != first["id"] and third["expired"] is False

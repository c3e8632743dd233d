"""`ephemeral "allowlist_temporary_ingress"`: access for exactly one Terraform run.

Terraform 1.15.5 (ephemeral resources need >= 1.10) against the emulator. A second provider
configuration takes the ephemeral grant's id in its `ip_lookup_url`, so the stand-in IP service is
asked, mid-run, with the grant id in the query: at that moment the test looks at the emulator.
After the run nothing of the grant remains, on AWS or in the state.
"""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest

import conftest
from test_temporary_ingress import groups, ingress_rules, one_line  # noqa: F401

pytestmark = pytest.mark.parametrize("terraform", ["1.15.5"], indirect=True, ids=["tf1.15.5"])


def run_config(my_ip, db: str, bastion: str) -> str:
    return conftest.config(f"""
ephemeral "allowlist_temporary_ingress" "ci" {{
  security_group_ids = {json.dumps([db])}
  ports              = [5432]
  description        = "ci run"
}}

# A later step of the run that depends on the grant: a provider configured from it.
provider "allowlist" {{
  alias         = "during"
  ip_lookup_url = "{my_ip.url}?grant=${{ephemeral.allowlist_temporary_ingress.ci.id}}"
}}

resource "allowlist_temporary_ingress" "bastion" {{
  provider           = allowlist.during
  security_group_ids = {json.dumps([bastion])}
  ports              = [22]
  ttl                = "1h"
}}
""", ip_lookup_url=my_ip.url)


def test_an_ephemeral_grant_lives_exactly_as_long_as_the_run(terraform, emulator, my_ip, groups):
    db, bastion = groups
    seen: dict[str, list[dict]] = {}

    def during(path: str) -> None:
        for grant in parse_qs(urlparse(path).query).get("grant", []):
            seen[grant] = ingress_rules(emulator, [db])

    my_ip.on_get = during
    terraform.write("main.tf", run_config(my_ip, db, bastion))
    started = datetime.now(timezone.utc)
    terraform.apply()

    # Mid-run, the grant's rule existed, with the grant's tags, ephemeral, for the default 15m.
    assert list(seen) and all(g.startswith("grant-") for g in seen), seen
    grant = next(iter(seen))
    [rule] = seen[grant]
    tags = rule["TagMap"]
    assert (rule["FromPort"], rule["CidrIpv4"], rule["Description"]) == (5432, "198.51.100.77/32", "ci run")
    assert tags["allowlist:managed-by"] == "allowlist" and tags["allowlist:grant-id"] == grant
    assert tags["allowlist:ephemeral"] == "true"
    assert f"allowlist:holder:{grant}" in tags
    expires = datetime.strptime(tags["allowlist:expires-at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert started + timedelta(minutes=14) < expires <= datetime.now(timezone.utc) + timedelta(minutes=15)

    # After the run: no rule of the grant on AWS, and no trace of it in the state.
    assert ingress_rules(emulator, [db]) == []
    assert len(ingress_rules(emulator, [bastion])) == 1
    state = (terraform.workdir / "terraform.tfstate").read_text()
    assert grant not in state and "5432" not in state

    # A plan alone opens the grant and closes it again.
    emulator.clear_requests()
    assert terraform.plan_detailed() == 0
    assert emulator.count(action="AuthorizeSecurityGroupIngress") == 1
    assert emulator.count(action="RevokeSecurityGroupIngress") == 1
    assert ingress_rules(emulator, [db]) == []


def test_an_ephemeral_grant_refuses_bad_input_before_touching_aws(terraform, emulator, my_ip, groups):
    terraform.write("main.tf", conftest.config(f"""
ephemeral "allowlist_temporary_ingress" "ci" {{
  security_group_ids = {json.dumps(groups[:1])}
  ports              = [5432]
  cidr_blocks        = ["0.0.0.0/0"]
  ttl                = "48h"
}}
""", 'max_ttl = "24h"', ip_lookup_url=my_ip.url))
    emulator.clear_requests()
    result = terraform.run("plan", "-no-color", check=False)
    out = one_line(result.stderr)
    assert result.rc == 1
    assert "Invalid CIDR Block" in out and "allow_world" in out
    assert emulator.count(action="AuthorizeSecurityGroupIngress") == 0



def test_a_killed_run_leaves_only_rules_that_expire_and_get_swept(terraform, emulator, my_ip, groups, publisher):
    db, bastion = groups
    inside = threading.Event()
    killed = threading.Event()

    def during(path: str) -> None:
        if "grant=" in path:
            inside.set()
            killed.wait(timeout=30)  # hold the run mid-apply until the test has killed it

    my_ip.on_get = during
    terraform.write("main.tf", run_config(my_ip, db, bastion))
    process = terraform.start("apply", "-auto-approve", "-no-color", output=subprocess.DEVNULL)
    try:
        assert inside.wait(timeout=120), "the run never reached the step that needs the grant"
        conftest.kill_group(process)  # SIGKILL to Terraform's whole process group
        process.wait(timeout=30)
    finally:
        killed.set()
        conftest.kill_group(process)

    # Nothing closed the grant: its rule stays, tagged to expire within the ttl (15m).
    [rule] = ingress_rules(emulator, [db])
    expires = datetime.strptime(rule["TagMap"]["allowlist:expires-at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert expires <= datetime.now(timezone.utc) + timedelta(minutes=15)
    assert rule["TagMap"]["allowlist:ephemeral"] == "true"

    # A sweep before the ttl leaves it; one after it revokes exactly it.
    assert publisher.run("sweep", "--regions", "us-east-1").rc == 0
    assert [r["SecurityGroupRuleId"] for r in ingress_rules(emulator, [db])] == [rule["SecurityGroupRuleId"]]
    swept = publisher.run("sweep", "--regions", "us-east-1", env={"ALLOWLIST_CLOCK_OFFSET": "16m"})
    assert swept.rc == 0, swept.stderr
    assert ingress_rules(emulator, [db]) == []

"""`ephemeral "allowlist_temporary_ingress"`: access for exactly one Terraform run.

Terraform 1.15.5 (ephemeral resources need >= 1.10) against the emulator. A second provider
configuration takes the ephemeral grant's id in its `ip_lookup_url`, so the stand-in IP service is
asked, mid-run, with the grant id in the query: at that moment the test looks at the emulator.
After the run nothing of the grant remains, on AWS or in the state. Also: a later step lists
the grant through `data "allowlist_grants"`, and two overlapping runs from one IP share its rule.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest

import conftest
from test_temporary_ingress import groups, ingress_rules, one_line  # noqa: F401

pytestmark = pytest.mark.parametrize("terraform", ["1.15.5"], indirect=True, ids=["tf1.15.5"])


def run_config(my_ip, db: str, bastion: str, run: str = "", port: int = 22, step: str = "") -> str:
    """The CI run: the ephemeral grant on the database, then a later step that depends on it (a
    provider configured from it, whose IP lookup names the grant, and `run` when given), which
    opens `port` on the bastion with `step` (extra HCL) in that resource."""
    tag = f"run={run}&" if run else ""
    return conftest.config(f"""
ephemeral "allowlist_temporary_ingress" "ci" {{
  security_group_ids = {json.dumps([db])}
  ports              = [5432]
  description        = "ci run"
}}

# A later step of the run that depends on the grant: a provider configured from it.
provider "allowlist" {{
  alias         = "during"
  ip_lookup_url = "{my_ip.url}?{tag}grant=${{ephemeral.allowlist_temporary_ingress.ci.id}}"
}}

resource "allowlist_temporary_ingress" "bastion" {{
  provider           = allowlist.during
  security_group_ids = {json.dumps([bastion])}
  ports              = [{port}]
  ttl                = "1h"
  {step}
}}
""", ip_lookup_url=my_ip.url)


def rules_seen_mid_run(my_ip, emulator, db: str) -> dict[str, list[dict]]:
    """Grant id -> the database group's rules, as the emulator had them when the step that
    depends on the grant asked the stand-in IP service (filled in during the run)."""
    seen: dict[str, list[dict]] = {}

    def during(path: str) -> None:
        for grant in parse_qs(urlparse(path).query).get("grant", []):
            seen[grant] = ingress_rules(emulator, [db])

    my_ip.on_get = during
    return seen


def test_an_ephemeral_grant_lives_exactly_as_long_as_the_run(terraform, emulator, my_ip, groups):
    db, bastion = groups
    seen = rules_seen_mid_run(my_ip, emulator, db)
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


def test_a_later_step_lists_the_ephemeral_grant_as_ephemeral(terraform, emulator, my_ip, groups):
    db, bastion = groups
    seen = rules_seen_mid_run(my_ip, emulator, db)
    # Through the provider configured from the grant, read after the step that needs it (so
    # during the apply, while the grant is open): who holds access to the database.
    terraform.write("main.tf", run_config(my_ip, db, bastion) + f"""
data "allowlist_grants" "db" {{
  provider           = allowlist.during
  security_group_ids = {json.dumps([db])}
  depends_on         = [allowlist_temporary_ingress.bastion]
}}

output "db_grants" {{ value = data.allowlist_grants.db.grants }}
""")
    terraform.apply()
    [grant] = seen
    [rule] = seen[grant]
    [listed] = terraform.output()["db_grants"]["value"]
    assert listed["id"] == grant and listed["ephemeral"] is True and listed["expired"] is False
    assert listed["rule_ids"] == [rule["SecurityGroupRuleId"]] and listed["ports"] == [5432]
    assert listed["cidr_blocks"] == ["198.51.100.77/32"] and listed["granted_by"].startswith("arn:aws:")
    assert f"allowlist:holder:{grant}" in rule["TagMap"]
    assert rule["TagMap"][f"allowlist:holder:{grant}"].endswith(" ephemeral")

    # Closed at the end of the run. The state holds no ephemeral resource: the grant's id is
    # there only inside the listing the configuration asked for.
    assert ingress_rules(emulator, [db]) == []
    state = json.loads((terraform.workdir / "terraform.tfstate").read_text())
    assert {r["mode"] for r in state["resources"]} == {"managed", "data"}
    assert not any(r["type"] == "allowlist_temporary_ingress" and r["mode"] != "managed" for r in state["resources"])


def overlapping_config(my_ip, db: str, bastion: str, run: str, gate: str) -> str:
    """The CI run `run` whose step that needs the grant waits (a local-exec, bounded to 120 s)
    until the file `gate`.go exists, having written `gate`.waiting."""
    wait = (f"touch {gate}.waiting; i=0; "
            f"while [ ! -f {gate}.go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; test -f {gate}.go")
    step = f'provisioner "local-exec" {{\n    command = {json.dumps(wait)}\n  }}'
    return run_config(my_ip, db, bastion, run=run, port={"a": 22, "b": 2222}[run], step=step)


def test_two_runs_from_one_ip_share_the_rule_until_the_later_closes(terraform, emulator, my_ip, groups, tmp_path):
    db, bastion = groups
    grants: dict[str, str] = {}

    def during(path: str) -> None:
        query = parse_qs(urlparse(path).query)
        if "grant" in query:
            grants[query["run"][0]] = query["grant"][0]

    my_ip.on_get = during
    second = conftest.TerraformRunner(terraform.version, terraform.binary, tmp_path / "second", terraform.env)
    second.workdir.mkdir()
    gate = {run: tmp_path / f"gate-{run}" for run in "ab"}
    terraform.write("main.tf", overlapping_config(my_ip, db, bastion, "a", str(gate["a"])))
    second.write("main.tf", overlapping_config(my_ip, db, bastion, "b", str(gate["b"])))

    def wait_for(path, process) -> None:
        for _ in range(1200):  # 120 s at most
            if path.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert path.exists(), f"the run ended (rc {process.poll()}) before it reached its step"

    processes = []
    try:
        # Run a reaches its step, holding its grant on the database.
        a = terraform.start("apply", "-auto-approve", "-no-color")
        processes.append(a)
        wait_for(gate["a"].with_suffix(".waiting"), a)
        [rule] = ingress_rules(emulator, [db])
        holders = {k for k in rule["TagMap"] if k.startswith("allowlist:holder:")}
        assert holders == {f"allowlist:holder:{grants['a']}"}

        # Run b, from the same IP, gets its own grant: it shares the one rule (AWS allows no
        # second identical rule) and does not fail on it.
        b = second.start("apply", "-auto-approve", "-no-color")
        processes.append(b)
        wait_for(gate["b"].with_suffix(".waiting"), b)
        [shared] = ingress_rules(emulator, [db])
        assert shared["SecurityGroupRuleId"] == rule["SecurityGroupRuleId"]
        holders = {k for k in shared["TagMap"] if k.startswith("allowlist:holder:")}
        assert holders == {f"allowlist:holder:{grants['a']}", f"allowlist:holder:{grants['b']}"}
        assert grants["a"] != grants["b"]

        # Run a ends first: its close leaves the rule to run b, which still runs.
        gate["a"].with_suffix(".go").touch()
        out_a, err_a = a.communicate(timeout=120)
        assert a.returncode == 0, err_a
        [kept] = ingress_rules(emulator, [db])
        assert kept["SecurityGroupRuleId"] == rule["SecurityGroupRuleId"]
        holders = {k for k in kept["TagMap"] if k.startswith("allowlist:holder:")}
        assert holders == {f"allowlist:holder:{grants['b']}"}

        # Run b ends: the last holder closes, and the rule goes.
        gate["b"].with_suffix(".go").touch()
        out_b, err_b = b.communicate(timeout=120)
        assert b.returncode == 0, err_b
        assert ingress_rules(emulator, [db]) == []
    finally:
        for run in "ab":
            gate[run].with_suffix(".go").touch()
        for process in processes:
            conftest.kill_group(process)

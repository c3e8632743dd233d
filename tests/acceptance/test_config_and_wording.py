"""What a new user trips on (issue 11): secrets in URLs, a bad endpoint flag, and messages.

Real Terraform (1.0.3 and 1.15.5) and the real publisher against the emulator. Each test failed
on the provider and publisher before these fixes.
"""

from __future__ import annotations

import json

import pytest

from test_temporary_ingress import REGION, config, grant_body, groups, one_line  # noqa: F401

SECRET = "s3cretPassw0rd"
TOKEN = "t0kenValue42"


def without(body: str, key: str) -> str:
    return "\n".join(line for line in body.splitlines() if line.split("=")[0].strip() != key)


def plan_error(terraform, my_ip, body: str, provider: str = "") -> str:
    terraform.write("main.tf", config(my_ip, body, provider))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1, result.stdout
    return one_line(result.stderr)


# ---- item 8: credentials in ip_lookup_url never echoed --------------------------------------

def test_ip_lookup_url_credentials_are_not_echoed(terraform, emulator, my_ip, groups):
    # Nothing listens on port 1: the lookup fails and the message names the URL, redacted.
    url = f"http://alice:{SECRET}@127.0.0.1:1/ip?token={TOKEN}"
    terraform.write("main.tf", config(my_ip, grant_body(groups[:1])).replace(my_ip.url, url))
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False)
    assert result.rc == 1
    out = one_line(result.stdout + result.stderr)
    assert "Unable to Detect Your IP Address" in out
    assert "http://REDACTED@127.0.0.1:1/ip?REDACTED" in out
    assert SECRET not in out and TOKEN not in out
    assert emulator.count(action="AuthorizeSecurityGroupIngress") == 0


def test_invalid_url_message_hides_credentials(terraform, my_ip, groups):
    # Terraform itself quotes the configuration line; what the provider says must not repeat it.
    terraform.write("main.tf", config(my_ip, grant_body(groups[:1]), f'endpoint_url = "ftp://bob:{SECRET}@example"'))
    result = terraform.run("validate", "-json", "-no-color", check=False)
    assert result.rc == 1
    diagnostics = json.loads(result.stdout)["diagnostics"]
    ours = [d for d in diagnostics if d["summary"] == "Invalid URL"]
    assert len(ours) == 1, diagnostics
    assert "ftp://REDACTED@example" in ours[0]["detail"]
    assert SECRET not in ours[0]["summary"] + ours[0]["detail"]


# ---- item 7: publisher --endpoint-url is checked like the provider's ------------------------

@pytest.mark.parametrize("value", ["notaurl", f"ftp://bob:{SECRET}@example"])
def test_publisher_bad_endpoint_url_is_a_usage_error(publisher, emulator, value):
    result = publisher.run("sweep", "--regions", REGION, "--endpoint-url", value)
    assert result.rc == 2, result.stderr
    assert "--endpoint-url" in result.stderr
    assert "is not an absolute http:// or https:// URL" in result.stderr
    assert SECRET not in result.stderr
    assert emulator.requests()["total"] == 0, "refused before any AWS call"


# ---- item 9: wording -------------------------------------------------------------------------

def test_fractional_port_is_one_error_about_ports(terraform, emulator, my_ip, groups):
    body = without(grant_body(groups[:1]), "ports") + "\n  ports = [22.5]"
    err = plan_error(terraform, my_ip, body)
    assert "Error: Invalid Port" in err
    assert "a port is a whole number from 0 to 65535" in err
    assert "No Ports" not in err
    assert "9223372036854775807" not in err


def test_world_cidr_message_reads_well(terraform, my_ip, groups):
    body = grant_body(groups[:1], extra='cidr_blocks = ["0.0.0.0/0"]')
    err = plan_error(terraform, my_ip, body)
    assert "opens access to every address;" in err
    assert "every addresses" not in err


def test_ttl_too_long_echoes_the_users_words(terraform, my_ip, groups):
    err = plan_error(terraform, my_ip, grant_body(groups[:1], ttl="2days"), 'max_ttl = "36h"')
    assert 'ttl = "2days" is longer than the provider\'s max_ttl of 36h' in err


def test_malformed_duration_says_what_is_accepted(terraform, publisher, my_ip, groups):
    err = plan_error(terraform, my_ip, grant_body(groups[:1], ttl="-1h"))
    assert "Error: Invalid Duration" in err
    assert '"-1h" is not a duration' in err and '"90m"' in err and '"7d"' in err
    assert "expected" not in err, "no parser internals"
    result = publisher.run("sweep", "--regions", REGION, "--grace", "-1h")
    assert result.rc == 2
    assert "--grace" in result.stderr and '"90m"' in result.stderr
    assert "expected" not in result.stderr


@pytest.mark.parametrize("attribute, value, summary", [
    ("ports", "[5022, 5022]", "Duplicate Port"),
    ("port_ranges", '["8000-8100", "8000-8100"]', "Duplicate Port Range"),
    ("cidr_blocks", '["203.0.113.7/32", "203.0.113.7/32"]', "Duplicate CIDR Block"),
])
def test_a_value_listed_twice_is_an_error(terraform, emulator, my_ip, groups, attribute, value, summary):
    body = without(grant_body(groups[:1]), attribute) + f"\n  {attribute} = {value}"
    err = plan_error(terraform, my_ip, body)
    assert f"Error: {summary}" in err and "is listed twice" in err
    assert emulator.count(action="AuthorizeSecurityGroupIngress") == 0


def test_import_writes_the_ttl_compactly(terraform, emulator, my_ip, groups):
    body = grant_body(groups[:1], ttl="90m")
    terraform.write("main.tf", config(my_ip, body))
    terraform.apply()
    grant_id = terraform.output()["grant"]["value"]["id"]
    for name in ("terraform.tfstate", "terraform.tfstate.backup"):
        (terraform.workdir / name).unlink(missing_ok=True)
    terraform.write("main.tf", config(my_ip, body).split('output "grant"')[0])
    terraform.run("import", "-no-color", "allowlist_temporary_ingress.oncall", f"{REGION}/{grant_id}")
    shown = json.loads(terraform.run("show", "-json").stdout)
    assert shown["values"]["root_module"]["resources"][0]["values"]["ttl"] == "90m"
    assert terraform.plan_detailed() == 0


# ---- item 2: unknown values in filter blocks --------------------------------------------------

def egress_config(filter_values: str, extra: str = "") -> str:
    from test_egress_ips import config as egress

    return egress(f'filter {{\n    name   = "nat-gateway-id"\n    values = {filter_values}\n  }}', regions=[REGION]) + f"""
variable "gw" {{
  type = string
}}
{extra}
"""


@pytest.mark.parametrize("values", ["[var.gw]", "[var.gw, var.gw]"])
def test_filter_values_from_a_variable(terraform, emulator, values):
    wanted = emulator.seed.nat_gateway(REGION, {"Name": "proxy-a"}, ips=["198.18.7.1"])
    emulator.seed.nat_gateway(REGION, {"Name": "proxy-b"}, ips=["198.18.7.2"])
    terraform.write("main.tf", egress_config(values))
    # validate knows no variable values: the filter's values are unknown there.
    validate = terraform.run("validate", "-no-color", check=False)
    assert validate.rc == 0, validate.stdout + validate.stderr
    terraform.apply("-var", f"gw={wanted}")
    assert terraform.output()["cidrs"]["value"] == ["198.18.7.1/32"]


@pytest.mark.parametrize("terraform", ["1.15.5"], indirect=True, ids=["tf1.15.5"])
def test_filter_values_known_only_at_apply(terraform, emulator):
    # terraform_data (an attribute unknown until apply, no other provider) needs Terraform >= 1.4.
    wanted = emulator.seed.nat_gateway(REGION, {"Name": "proxy-a"}, ips=["198.18.7.1"])
    emulator.seed.nat_gateway(REGION, {"Name": "proxy-b"}, ips=["198.18.7.2"])
    later = 'resource "terraform_data" "gw" {\n  input = var.gw\n}\n'
    terraform.write("main.tf", egress_config("[terraform_data.gw.output]", later))
    plan = terraform.run("plan", "-no-color", "-var", f"gw={wanted}")
    assert "Invalid Filter" not in plan.stdout + plan.stderr
    terraform.apply("-var", f"gw={wanted}")
    assert terraform.output()["cidrs"]["value"] == ["198.18.7.1/32"]


# ---- item 6: an unknown region is a configuration error, not a transient failure ---------------

def test_unknown_region_in_the_data_source(terraform, emulator):
    from test_egress_ips import config as egress

    terraform.write("main.tf", egress('tags = { Name = "*proxy*" }', regions=["xx-fake-1", "us-west-2"]))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Error: Unable to Look Up NAT Gateways in xx-fake-1" in err
    assert 'no such region: "xx-fake-1"' in err and "Nothing was looked up: fix the region list" in err
    assert "Try again" not in err


def test_unknown_region_in_the_resource_and_import(terraform, emulator, my_ip, groups):
    err = plan_error(terraform, my_ip, grant_body(groups[:1], extra='region = "xx-fake-1"'))
    assert "Error: Unknown Region" in err and 'no such region: "xx-fake-1"' in err
    assert "Try again" not in err

    terraform.write("main.tf", config(my_ip, grant_body(groups[:1])).split('output "grant"')[0])
    result = terraform.run("import", "-no-color", "allowlist_temporary_ingress.oncall",
                           "xx-fake-1/grant-0123456789abcdef", check=False)
    assert result.rc == 1
    err = one_line(result.stderr)
    assert "Error: Unknown Region" in err and 'no such region: "xx-fake-1"' in err
    assert "Try again" not in err


# ---- item 5: TF_LOG_PROVIDER=debug shows every AWS call and RPC --------------------------------

def test_debug_log_shows_each_aws_call_and_rpc(terraform, emulator):
    from test_egress_ips import config as egress
    from test_reliability import FAULTY, MAX_ATTEMPTS, nat_fault, seed_egress

    seed_egress(emulator)
    emulator.set_faults(nat_fault({"mode": "error", "status": 503, "code": "Unavailable"}))
    terraform.env = {**terraform.env, "TF_LOG_PROVIDER": "debug", "AWS_SECRET_ACCESS_KEY": SECRET}
    terraform.write("main.tf", egress('tags = { Name = "*proxy*" }', regions=[FAULTY, "us-west-2"]))
    result = terraform.run("plan", "-no-color", check=False)
    assert result.rc == 1
    log = result.stderr
    calls = [line for line in log.splitlines() if "aws call" in line and "operation=DescribeNatGateways" in line]
    failed = [line for line in calls if f"region={FAULTY}" in line]
    # Every attempt against the failing region, numbered, with its status, code and latency.
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert any(f"attempt={attempt}" in line for line in failed), "\n".join(failed)
    assert all("status=503" in line and "error_code=Unavailable" in line and "latency_ms=" in line
               for line in failed), "\n".join(failed)
    assert any("region=us-west-2" in line and "status=200" in line for line in calls), "\n".join(calls)
    assert "rpc=ReadDataSource" in log and "type_name=allowlist_egress_ips" in log
    assert SECRET not in log

"""Reliability tests: what the provider and the publisher do when AWS misbehaves.

Each test injects one kind of fault through the emulator's control API
(testbed/emulator.py: per region/service/action, modes ``error``, ``delay``,
``reset`` and ``drop``, optionally only ``times`` times), runs the real
binaries (Terraform with our provider, ``allowlist-publisher``) and then asks
the emulator what really happened: how many calls were made, which rules
exist with which tags, whether the published object changed.

* Transient faults (503 Unavailable, 500 InternalError, 400 Throttling,
  503 RequestLimitExceeded, TCP reset), twice: retried, full result.
* The same faults for good: an error naming the region and the code, exit 3,
  the published object byte for byte unchanged.
* A region that never answers (``delay`` / ``drop`` of 60 s) with a 3 s
  ``request_timeout``: a timeout error well under 30 s, nothing written.
* A provider killed in the middle of a create, and a create whose second
  group keeps failing: only rules carrying our expiry tags remain, and the
  sweep removes them once they expire.
* The sweep running again and again while ``terraform apply`` creates grants
  in the same group.
* 1,200 NAT gateways in one region: two pages, every address, one document.
* A sweep that listed an expired rule while a new grant adopts that very rule
  (the sweep's revoke held by the emulator until the adoption is done): the
  live grant must keep its rule.

One Terraform version (the newest) is enough here: the behaviour under test is
the provider's, and the table of faults is the parameter. Every subprocess is
bounded and killed in a ``finally``; every wait loop has a deadline.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import RunResult, TerraformRunner, config, kill_group
from testbed.seed import EXPIRES_AT, GRANT_ID, MANAGED_BY, MANAGED_BY_VALUE

TF_VERSION = "1.15.5"
one_terraform = pytest.mark.parametrize("terraform", [TF_VERSION], indirect=True, ids=[f"tf{TF_VERSION}"])

HOME = "us-east-1"  # AWS_REGION of every run: the bucket's region, the grants' region
REGIONS = ["us-west-2", "eu-central-1", "ap-southeast-2"]
FAULTY = "eu-central-1"  # the region the faults are injected in
BUCKET = "egress-ip-ranges"
KEY = "ip-ranges.json"
TEXT_KEY = "ip-ranges.txt"
MAX_ATTEMPTS = 4  # documented: 4 attempts per AWS call

# The faults a real AWS endpoint produces that the SDK is meant to retry.
TRANSIENT_FAULTS = {
    "unavailable-503": {"mode": "error", "status": 503, "code": "Unavailable"},
    "internal-error-500": {"mode": "error", "status": 500, "code": "InternalError"},
    "throttling-400": {"mode": "error", "status": 400, "code": "Throttling"},
    "request-limit-exceeded-503": {"mode": "error", "status": 503, "code": "RequestLimitExceeded"},
    "tcp-reset": {"mode": "reset"},
}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def one_line(text: str) -> str:
    """Terraform wraps diagnostics; compare on one line with single spaces."""
    return re.sub(r"[\s│]+", " ", text)


def nat_fault(fault: dict[str, Any], region: str = FAULTY, **extra: Any) -> list[dict[str, Any]]:
    """A fault table with one rule: `fault` on DescribeNatGateways in `region`."""
    return [{"region": region, "action": "DescribeNatGateways", **fault, **extra}]


def egress_config(regions: list[str] = REGIONS, **provider: Any) -> str:
    """The data source over `regions`; `provider` adds provider attributes (see `config`)."""
    return config("""\
data "allowlist_egress_ips" "proxies" {
  tags = { Name = "*proxy*" }
}

output "cidrs" { value = data.allowlist_egress_ips.proxies.cidrs }
""", egress_regions=regions, **provider)


def seed_egress(emulator) -> dict[str, list[str]]:
    """Tagged gateways in the three regions (one with two addresses) and an
    untagged one in each. Returns the IPs that must be found, by region."""
    seed = emulator.seed
    want = {
        "us-west-2": ["198.18.0.9", "198.18.0.10"],
        "eu-central-1": ["198.18.1.1", "198.18.1.2"],
        "ap-southeast-2": ["198.18.2.1"],
    }
    seed.nat_gateway("us-west-2", {"Name": "proxy-a"}, ips=want["us-west-2"])
    seed.nat_gateway("eu-central-1", {"Name": "proxy-b"}, ips=want["eu-central-1"][:1])
    seed.nat_gateway("eu-central-1", {"Name": "proxy-c"}, ips=want["eu-central-1"][1:])
    seed.nat_gateway("ap-southeast-2", {"Name": "proxy-d"}, ips=want["ap-southeast-2"])
    for n, region in enumerate(REGIONS):
        seed.nat_gateway(region, {}, ips=[f"203.0.113.{n + 1}"])
    return want


def all_cidrs(ips_by_region: dict[str, list[str]]) -> list[str]:
    """Every IP as /32, in address order (as both the provider and the publisher sort)."""
    ips = sorted((ip for ips in ips_by_region.values() for ip in ips), key=ipaddress.ip_address)
    return [f"{ip}/32" for ip in ips]


def publish_args(*extra: str, regions: list[str] = REGIONS) -> list[str]:
    return ["publish", "--regions", ",".join(regions), "--tag", "Name=*proxy*",
            "--bucket", BUCKET, "--text-key", TEXT_KEY, *extra]


def read_object(emulator, key: str = KEY) -> tuple[bytes, str]:
    """(body, ETag) of an object in the bucket."""
    got = emulator.client("s3", HOME).get_object(Bucket=BUCKET, Key=key)
    return got["Body"].read(), got["ETag"]


def published_cidrs(emulator) -> list[str]:
    return [p["ip_prefix"] for p in json.loads(read_object(emulator)[0])["prefixes"]]


def summary(result: RunResult, kind: str) -> dict[str, str]:
    """The one ``<kind> summary k=v ...`` line of a run's stderr, as a dict."""
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", result.stderr).splitlines()
             if re.search(rf"\b{kind} summary\b", line)]
    assert len(lines) == 1, f"expected one '{kind} summary' line:\n{result.stderr}"
    pairs = re.findall(r'([a-z_]+)=("[^"]*"|\S+)', lines[0].split(f"{kind} summary", 1)[1])
    return {k: v.strip('"') for k, v in pairs}


def nat_calls(emulator) -> dict[str, int]:
    """DescribeNatGateways calls per region since the counters were last cleared."""
    return {
        row["region"]: row["count"]
        for row in emulator.requests()["requests"]
        if row["action"] == "DescribeNatGateways"
    }


def s3_puts(emulator) -> int:
    return emulator.count(service="s3", action="PUT")


def ingress_rules(emulator, groups: list[str], region: str = HOME) -> list[dict[str, Any]]:
    """Every inbound rule of `groups` as the emulator holds it, tags as ``TagMap``."""
    ec2 = emulator.client("ec2", region)
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": groups}])
    out = []
    for rule in rules["SecurityGroupRules"]:
        if not rule["IsEgress"]:
            rule["TagMap"] = {t["Key"]: t["Value"] for t in rule.get("Tags", [])}
            out.append(rule)
    return out


def parse_expiry(value: str) -> datetime:
    """An ``allowlist:expires-at`` value (RFC 3339, UTC) as a datetime; ValueError otherwise."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll `predicate` until it is truthy (returned) or `timeout` seconds pass (the test fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Background:
    """A terraform command started in its own session (so the whole process
    group, provider plugin included, can be killed), output to files."""

    def __init__(self, runner: TerraformRunner, *args: str):
        self.args = args
        self.out = runner.workdir / f"bg-{os.getpid()}-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(
                [str(runner.binary), *args], cwd=runner.workdir, env=runner.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            )

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> RunResult:
        """Its result; killed (and the test failed) if it runs longer than `timeout`."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"terraform {' '.join(self.args)} still running after {timeout}s:\n"
                                 f"{self.err.read_text(errors='replace')}") from None
        return RunResult(self.args, self.popen.returncode,
                         self.out.read_text(errors="replace"), self.err.read_text(errors="replace"))

    def kill(self) -> None:
        """SIGKILL to terraform's whole process group (terraform and the provider)."""
        kill_group(self.popen)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def live_group_members(pgid: int) -> list[int]:
    """Pids of the processes in process group `pgid` that are still running (not zombies)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


# --------------------------------------------------------------------------
# 1. Transient faults are retried and the result is complete.
# --------------------------------------------------------------------------


@one_terraform
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS.values(), ids=TRANSIENT_FAULTS.keys())
def test_transient_fault_is_retried_and_the_list_is_complete(terraform, publisher, emulator, fault):
    want = seed_egress(emulator)
    emulator.seed.bucket(BUCKET)
    terraform.write("main.tf", egress_config())

    # The data source: two faulted attempts in eu-central-1, then the answer.
    emulator.set_faults(nat_fault(fault, times=2))
    emulator.clear_requests()
    terraform.apply()
    assert terraform.output()["cidrs"]["value"] == all_cidrs(want)
    assert nat_calls(emulator) == {"us-west-2": 1, FAULTY: 3, "ap-southeast-2": 1}

    # The publisher, the same fault again: exit 0, every prefix, in both objects.
    emulator.set_faults(nat_fault(fault, times=2))
    emulator.clear_requests()
    result = publisher.run(*publish_args())
    assert result.rc == 0, result.stderr
    s = summary(result, "publish")
    assert (s["regions"], s["prefixes"], s["changed"]) == ("3", str(len(all_cidrs(want))), "true"), s
    assert published_cidrs(emulator) == all_cidrs(want)
    assert read_object(emulator, TEXT_KEY)[0].decode().splitlines() == all_cidrs(want)
    assert nat_calls(emulator) == {"us-west-2": 1, FAULTY: 3, "ap-southeast-2": 1}


# --------------------------------------------------------------------------
# 2. Persistent failure: an error naming the region, nothing written.
# --------------------------------------------------------------------------


@one_terraform
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS.values(), ids=TRANSIENT_FAULTS.keys())
def test_persistent_fault_fails_naming_the_region(terraform, publisher, emulator, fault):
    seed_egress(emulator)
    emulator.seed.bucket(BUCKET)
    # A published document exists, and there is a change waiting to be published.
    assert publisher.run(*publish_args()).rc == 0
    before, text_before = read_object(emulator), read_object(emulator, TEXT_KEY)
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy-new"}, ips=["198.18.0.77"])
    # What names the failure: the AWS error code, or for a reset the transport error.
    named = fault.get("code", "could not reach AWS")

    emulator.set_faults(nat_fault(fault))
    emulator.clear_requests()
    terraform.write("main.tf", egress_config())
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False)
    assert result.rc == 1, result.stdout
    err = one_line(result.stderr)
    assert f"Unable to Look Up NAT Gateways in {FAULTY}" in err, err
    assert named in err, err
    for region in set(REGIONS) - {FAULTY}:
        assert f"in {region}" not in err, err
    assert terraform.output() == {}, "no list at all, not a shorter one"
    assert nat_calls(emulator)[FAULTY] == MAX_ATTEMPTS, "every attempt was made"
    print(f"\n{named}: {re.search(r'DescribeNatGateways in [^│]*', result.stderr).group(0).strip()}")

    emulator.clear_requests()
    result = publisher.run(*publish_args())
    assert result.rc == 3, result.stderr
    assert FAULTY in result.stderr and named in result.stderr, result.stderr
    assert read_object(emulator) == before, "the JSON document is byte for byte unchanged"
    assert read_object(emulator, TEXT_KEY) == text_before
    assert s3_puts(emulator) == 0
    assert nat_calls(emulator)[FAULTY] == MAX_ATTEMPTS


# --------------------------------------------------------------------------
# 3. Timeouts are bounded.
# --------------------------------------------------------------------------

HANG_MS = 60_000  # the faulted region takes a minute to answer (delay) or never does (drop)
REQUEST_TIMEOUT = "3s"
WALL_BOUND = 15.0  # seconds: "well under 30 s"


@one_terraform
@pytest.mark.parametrize("mode", ["delay", "drop"])
def test_timeout_is_bounded(terraform, publisher, emulator, mode):
    seed_egress(emulator)
    emulator.seed.bucket(BUCKET)
    assert publisher.run(*publish_args()).rc == 0
    before, text_before = read_object(emulator), read_object(emulator, TEXT_KEY)
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy-new"}, ips=["198.18.0.77"])
    emulator.set_faults(nat_fault({"mode": mode, "delay_ms": HANG_MS}))

    # The data source with request_timeout = "3s".
    terraform.write("main.tf", egress_config(request_timeout=REQUEST_TIMEOUT))
    start = time.monotonic()
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False, timeout=90)
    tf_wall = time.monotonic() - start
    print(f"\n{mode}: terraform failed after {tf_wall:.1f}s: {one_line(result.stderr)[:400]}")
    assert result.rc == 1, result.stdout
    err = one_line(result.stderr)
    assert f"Unable to Look Up NAT Gateways in {FAULTY}" in err, err
    assert "timed out" in err, err
    assert 3.0 <= tf_wall < WALL_BOUND, f"terraform took {tf_wall:.1f}s"
    assert terraform.output() == {}
    if mode == "drop":
        assert emulator.held() == 0, "the provider closed the connection it gave up on"

    # The publisher with --request-timeout 3s.
    start = time.monotonic()
    result = publisher.run(*publish_args("--request-timeout", REQUEST_TIMEOUT), timeout=90)
    pub_wall = time.monotonic() - start
    assert result.rc == 3, result.stderr
    assert FAULTY in result.stderr and "timed out" in result.stderr, result.stderr
    assert 3.0 <= pub_wall < WALL_BOUND, f"the publisher took {pub_wall:.1f}s"
    assert read_object(emulator) == before
    assert read_object(emulator, TEXT_KEY) == text_before
    print(f"{mode}: the publisher exited {result.rc} after {pub_wall:.1f}s")


# --------------------------------------------------------------------------
# 4. Crash safety of grants.
# --------------------------------------------------------------------------

AUTHORIZE = "AuthorizeSecurityGroupIngress"
HOLD_MS = 5_000  # how long the second group's AuthorizeSecurityGroupIngress is held


def grant_config(my_ip, groups: list[str], ttl: str = "1h", count: int | None = None, port: int = 22) -> str:
    if count is None:
        body = f"""resource "allowlist_temporary_ingress" "oncall" {{
  security_group_ids = {json.dumps(groups)}
  ports              = [22, 443]
  ttl                = "{ttl}"
  description        = "on-call access"
}}

output "rule_ids" {{ value = allowlist_temporary_ingress.oncall.rule_ids }}
"""
    else:
        body = f"""resource "allowlist_temporary_ingress" "many" {{
  count              = {count}
  security_group_ids = {json.dumps(groups)}
  ports              = [{port} + count.index]
  ttl                = "{ttl}"
}}

output "rule_ids" {{ value = flatten(allowlist_temporary_ingress.many[*].rule_ids) }}
"""
    return config(body, ip_lookup_url=my_ip.url)


def assert_all_carry_expiry(rules: list[dict[str, Any]], now: datetime, ttl: timedelta) -> None:
    """Every rule is ours and says when it expires: within `ttl` of `now`."""
    for rule in rules:
        tags = rule["TagMap"]
        assert tags.get(MANAGED_BY) == MANAGED_BY_VALUE, rule
        assert re.fullmatch(r"grant-[0-9a-f]{16}", tags.get(GRANT_ID, "")), rule
        expires = parse_expiry(tags[EXPIRES_AT])
        assert now < expires <= now + ttl + timedelta(minutes=5), rule


@one_terraform
def test_provider_killed_mid_apply_leaves_only_expiring_rules(terraform, publisher, emulator, my_ip):
    groups = [emulator.seed.security_group(HOME, "bastion"), emulator.seed.security_group(HOME, "web")]
    # The first Authorize (first group) goes through; the next ones are held 5 s.
    emulator.set_faults([
        {"action": AUTHORIZE, "mode": "delay", "delay_ms": 0, "times": 1},
        {"action": AUTHORIZE, "mode": "delay", "delay_ms": HOLD_MS},
    ])
    emulator.clear_requests()
    terraform.write("main.tf", grant_config(my_ip, groups))
    now = datetime.now(timezone.utc)

    apply = Background(terraform, "apply", "-auto-approve", "-no-color")
    try:
        # The second group's Authorize has reached the emulator (and is held there)...
        wait_until("the second AuthorizeSecurityGroupIngress", lambda: emulator.count(action=AUTHORIZE) >= 2
                   or apply.poll() is not None, timeout=60)
        assert apply.poll() is None, apply.wait(1).stderr
        arrived = time.monotonic()
        # ...when terraform and the provider die.
        apply.kill()
        assert apply.poll() == -signal.SIGKILL
        wait_until("terraform and the provider to be gone",
                   lambda: not live_group_members(apply.popen.pid), timeout=10)
    finally:
        apply.kill()

    # The held request is then served (the emulator cannot know the client died):
    # the second group gets its rules with nobody to record them.
    wait_until("the held Authorize to be served",
               lambda: len(ingress_rules(emulator, groups[1:])) == 2, timeout=HOLD_MS / 1000 + 10)
    time.sleep(max(0.0, arrived + HOLD_MS / 1000 + 1 - time.monotonic()))
    assert emulator.count(action=AUTHORIZE) == 2

    rules = ingress_rules(emulator, groups)
    assert {r["GroupId"] for r in rules} == set(groups) and len(rules) == 4, rules
    assert_all_carry_expiry(rules, now, timedelta(hours=1))
    assert len({r["TagMap"][GRANT_ID] for r in rules}) == 1, "one grant"

    # Not yet expired: the sweep leaves them. Past the TTL: it removes every one.
    result = publisher.run("sweep", "--regions", HOME)
    assert result.rc == 0, result.stderr
    assert len(ingress_rules(emulator, groups)) == 4
    result = publisher.run("sweep", "--regions", HOME, env={"ALLOWLIST_CLOCK_OFFSET": "2h"})
    assert result.rc == 0, result.stderr
    s = summary(result, "sweep")
    assert (s["expired"], s["revoked"], s["failed"]) == ("4", "4", "0"), s
    assert ingress_rules(emulator, groups) == []


# A create that fails part-way because the second group is at its 60-rule limit
# is covered by test_temporary_ingress.py::test_temporary_ingress_failure_on_second_group_leaves_nothing.
# Here the second group's Authorize keeps failing with a retryable error instead.
@one_terraform
def test_create_failing_after_retries_on_second_group_leaves_nothing(terraform, emulator, my_ip):
    groups = [emulator.seed.security_group(HOME, "bastion"), emulator.seed.security_group(HOME, "web")]
    emulator.set_faults([
        {"action": AUTHORIZE, "mode": "delay", "delay_ms": 0, "times": 1},
        {"action": AUTHORIZE, "mode": "error", "status": 503, "code": "Unavailable"},
    ])
    emulator.clear_requests()
    terraform.write("main.tf", grant_config(my_ip, groups))
    result = terraform.run("apply", "-auto-approve", "-no-color", check=False)
    assert result.rc == 1, result.stdout
    err = one_line(result.stderr)
    assert "Unable to Authorize Ingress" in err, err
    assert "Unavailable" in err and groups[1] in err, err
    assert "No rule of this grant was left behind" in err, err
    # The first group's Authorize, then every attempt at the second group's.
    assert emulator.count(action=AUTHORIZE) == 1 + MAX_ATTEMPTS
    assert emulator.count(action="RevokeSecurityGroupIngress") >= 1
    assert ingress_rules(emulator, groups) == []
    assert terraform.run("state", "list").stdout.strip() == ""


# --------------------------------------------------------------------------
# 5. The sweep runs while terraform apply creates grants in the same group.
# --------------------------------------------------------------------------


@one_terraform
def test_sweep_concurrent_with_apply(terraform, publisher, emulator, my_ip):
    """Sweep n runs with the clock n+1 minutes ahead, so every sweep finds a
    newly expired rule in the group and revokes it while the apply authorizes
    there; the live grants (1 h) never expire within the loop's 40 minutes."""
    seed = emulator.seed
    group = seed.security_group(HOME, "bastion")
    now = datetime.now(timezone.utc)
    sweep_limit = 40
    expired = {  # long expired: the first sweep takes these
        seed.managed_rule(HOME, group, f"198.51.100.{n}/32", 1000 + n, now - timedelta(hours=2),
                          grant_id=f"grant-00000000000000e{n}")
        for n in range(4)
    }
    for n in range(sweep_limit):  # rule n expires just before sweep n looks (clock n+1 minutes ahead)
        expired.add(seed.managed_rule(HOME, group, "198.51.100.99/32", 3000 + n,
                                      now + timedelta(minutes=n, seconds=30), grant_id=f"grant-{n:016x}"))
    # Each of the provider's Authorize calls is held 3 s: the apply is still
    # running while sweeps come and go.
    emulator.set_faults([{"action": AUTHORIZE, "mode": "delay", "delay_ms": 3000}])
    grants = 5
    terraform.write("main.tf", grant_config(my_ip, [group], count=grants, port=2000))

    sweeps: list[RunResult] = []
    during_apply = 0
    apply = Background(terraform, "apply", "-auto-approve", "-no-color")
    try:
        for n in range(sweep_limit):
            sweeps.append(publisher.run("sweep", "--regions", HOME, timeout=60,
                                        env={"ALLOWLIST_CLOCK_OFFSET": f"{n + 1}m"}))
            if apply.poll() is not None:
                break
            during_apply += 1
            time.sleep(0.1)  # 40 sweeps then span the whole apply
        result = apply.wait(timeout=120)
    finally:
        apply.kill()
    # Later: everything seeded has expired, the grants have not.
    sweeps.append(publisher.run("sweep", "--regions", HOME, timeout=60,
                                env={"ALLOWLIST_CLOCK_OFFSET": f"{sweep_limit + 5}m"}))

    assert result.rc == 0, result.stderr
    print(f"\n{during_apply} sweeps ran during the apply, {len(sweeps)} in all")
    assert during_apply >= 2, f"only {during_apply} sweeps overlapped the apply"
    for sweep in sweeps:
        assert sweep.rc == 0, sweep.stderr
        assert summary(sweep, "sweep")["failed"] == "0", sweep.stderr
    assert sum(int(summary(s, "sweep")["revoked"]) for s in sweeps[:during_apply]) >= during_apply, \
        "every sweep during the apply revoked something in the group"
    assert sum(int(summary(s, "sweep")["revoked"]) for s in sweeps) == len(expired)

    live = set(terraform.output()["rule_ids"]["value"])
    assert len(live) == grants
    rules = ingress_rules(emulator, [group])
    present = {r["SecurityGroupRuleId"] for r in rules}
    assert live <= present, f"live grants lost rules: {live - present}"
    assert present.isdisjoint(expired), "expired rules remain"
    assert present == live
    assert_all_carry_expiry(rules, now, timedelta(hours=1))
    emulator.clear_faults()
    assert terraform.plan_detailed() == 0, "the state matches what exists"


# --------------------------------------------------------------------------
# 6. Limits: 1,200 NAT gateways in one region.
# --------------------------------------------------------------------------

BIG_REGION = "eu-west-1"
BIG = 1200


@one_terraform
def test_1200_nat_gateways_in_one_region(terraform, publisher, emulator):
    ips = [f"198.18.{n // 250}.{n % 250 + 1}" for n in range(BIG)]
    ids = emulator.seed.nat_gateways(BIG_REGION, {"Name": "proxy"}, ips, workers=4)
    assert len(set(ids)) == BIG
    want = [f"{ip}/32" for ip in sorted(ips, key=ipaddress.ip_address)]
    emulator.seed.bucket(BUCKET)

    # The data source: every address, in two pages of at most 1,000.
    terraform.write("main.tf", egress_config(regions=[BIG_REGION]))
    emulator.clear_requests()
    terraform.apply()
    assert terraform.output()["cidrs"]["value"] == want
    assert nat_calls(emulator) == {BIG_REGION: 2}

    # The publisher: 1,200 prefixes in the document, 1,200 lines in the text.
    emulator.clear_requests()
    result = publisher.run(*publish_args(regions=[BIG_REGION]))
    assert result.rc == 0, result.stderr
    assert summary(result, "publish")["prefixes"] == str(BIG)
    assert nat_calls(emulator) == {BIG_REGION: 2}
    doc = json.loads(read_object(emulator)[0])
    assert [p["ip_prefix"] for p in doc["prefixes"]] == want
    assert {p["region"] for p in doc["prefixes"]} == {BIG_REGION}
    text = read_object(emulator, TEXT_KEY)[0].decode()
    assert text.endswith("\n") and text.splitlines() == want

    # Nothing changed: the second publish writes nothing.
    before, text_before = read_object(emulator), read_object(emulator, TEXT_KEY)
    emulator.clear_requests()
    again = publisher.run(*publish_args(regions=[BIG_REGION]))
    assert again.rc == 0, again.stderr
    assert summary(again, "publish")["changed"] == "false"
    assert s3_puts(emulator) == 0
    assert read_object(emulator) == before and read_object(emulator, TEXT_KEY) == text_before


# --------------------------------------------------------------------------
# 7. A sweep racing an adoption (last: it names a known race, see the docstring).
# --------------------------------------------------------------------------


@one_terraform
def test_sweep_racing_an_adoption_keeps_the_live_grant(terraform, publisher, emulator, my_ip):
    """A rule of an expired grant, not yet swept, identical to one a new grant
    wants, is adopted (re-tagged) by the new grant. A sweep that listed it as
    expired just before must not then revoke it: it now belongs to a live grant.
    The emulator holds the sweep's RevokeSecurityGroupIngress while the apply
    adopts the rule, then serves it.

    Fails as of commit 2ad2bfb: the sweep revokes by id what it listed as
    expired, without looking again, so the adopted rule of a grant that has
    just been created (expiring in an hour) is revoked and the grant silently
    loses its access until the next plan."""
    seed = emulator.seed
    group = seed.security_group(HOME, "bastion")
    old = seed.managed_rule(HOME, group, f"{my_ip.ip}/32", 22, datetime.now(timezone.utc) - timedelta(hours=2))
    emulator.set_faults([{"action": "RevokeSecurityGroupIngress", "mode": "delay", "delay_ms": 8000, "times": 1}])
    emulator.clear_requests()

    sweep = publisher.start("sweep", "--regions", HOME)
    try:
        wait_until("the sweep's RevokeSecurityGroupIngress",
                   lambda: emulator.count(action="RevokeSecurityGroupIngress") >= 1 or sweep.poll() is not None,
                   timeout=30)
        assert sweep.poll() is None, sweep.stderr()
        # While the revoke is held, a new grant of the same access adopts the rule.
        terraform.write("main.tf", config(f"""\
resource "allowlist_temporary_ingress" "oncall" {{
  security_group_ids = {json.dumps([group])}
  ports              = [22]
  ttl                = "1h"
}}

output "rule_ids" {{ value = allowlist_temporary_ingress.oncall.rule_ids }}
""", ip_lookup_url=my_ip.url))
        terraform.apply()
        adopted = terraform.output()["rule_ids"]["value"]
        assert sweep.poll() is None, "the sweep ended before the apply: the hold was too short to race"
        swept = sweep.wait(timeout=60)
    finally:
        sweep.kill()

    assert swept.rc == 0, swept.stderr
    rules = ingress_rules(emulator, [group])
    present = {r["SecurityGroupRuleId"] for r in rules}
    print(f"\nadopted {adopted} (old {old}); present after the sweep: {sorted(present)}")
    assert set(adopted) <= present, (
        f"the sweep revoked {sorted(set(adopted) - present)}, a rule of the live grant"
    )
    assert_all_carry_expiry(rules, datetime.now(timezone.utc), timedelta(hours=1))

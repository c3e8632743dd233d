"""The client side of the emulator: launch it, control it, seed AWS data into it.

Owns what tests (pytest fixtures, benchmarks) do *to* ``testbed/emulator.py``:

    emu = Emulator.launch(python, log_path)          # starts it, waits for READY
    emu.seed.nat_gateway("eu-central-1", {"Name": "egress-a"}, ips=["203.0.113.10", "203.0.113.11"])
    emu.seed.nat_gateways("eu-central-1", {"Name": "bulk"}, ips=[...])  # many, in threads
    emu.seed.elastic_ip("eu-central-1", {"Name": "proxy"}, ip="198.18.9.1", associate=True)
    emu.seed.regional_nat_gateway("eu-central-1", {"Name": "proxy"}, ips=[...])
    other = emu.seed.in_account("222222222222")     # the same helpers, in another account
    emu.set_faults([{"region": "eu-central-1", "action": "DescribeNatGateways", "mode": "error"}])
    emu.count(action="DescribeNatGateways")          # AWS calls seen since the last reset
    emu.reset()                                      # state, faults and counters wiped
    emu.stop()

`Seed` gives each region one VPC and subnet (tagged ``testbed=seed``), found
again by tag, so seeding keeps working after a reset. NAT gateway IPs are
chosen with ``AllocateAddress(Address=...)``; the first is the primary address,
the rest go in as ``SecondaryAllocationIds`` (the emulator patches moto to carry
several addresses per gateway, as AWS does).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3

EMULATOR = Path(__file__).resolve().parent / "emulator.py"
SEED_TAG = {"Key": "testbed", "Value": "seed"}
VPC_CIDR = "10.0.0.0/16"
SUBNET_CIDR = "10.0.1.0/24"
# The tag contract of `allowlist_temporary_ingress` (core/src/ingress.rs, `tags`).
MANAGED_BY = "allowlist:managed-by"
MANAGED_BY_VALUE = "allowlist"
GRANT_ID = "allowlist:grant-id"
EXPIRES_AT = "allowlist:expires-at"
CREATED_AT = "allowlist:created-at"
GRANTED_BY = "allowlist:granted-by"
SEED_CALLER = "arn:aws:iam::123456789012:user/seed"


DEFAULT_ACCOUNT = "123456789012"  # moto's account for the test bed's fixed credentials
TEST_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def client(endpoint: str, service: str, region: str, credentials: dict[str, str] | None = None) -> Any:
    """A boto3 client for the emulator with the test bed's fixed credentials
    (or `credentials`, e.g. from AssumeRole into another account)."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        **(credentials or TEST_CREDENTIALS),
    )


def role_arn(account_id: str, name: str = "allowlist-egress-reader") -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def assumed_credentials(endpoint: str, account_id: str) -> dict[str, str]:
    """Credentials acting in `account_id`: moto's AssumeRole lands them in the
    role's account (the role need not exist)."""
    sts = client(endpoint, "sts", "us-east-1")
    creds = sts.assume_role(RoleArn=role_arn(account_id, "testbed-seed"), RoleSessionName="seed")["Credentials"]
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


def without_aws_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """`environ` less every AWS_* variable: an inherited profile, region or
    endpoint must not leak into the emulator or the test clients."""
    return {k: v for k, v in environ.items() if not k.startswith("AWS_")}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class Emulator:
    """A running emulator: its URL, its control API and boto3 clients for it."""

    def __init__(self, url: str, process: subprocess.Popen | None = None, log_path: Path | None = None):
        self.url = url
        self.process = process
        self.log_path = log_path
        self.seed = Seed(url)

    @classmethod
    def launch(
        cls, python: str, log_path: Path, port: int = 0, timeout: float = 30.0, quiet: bool = False
    ) -> "Emulator":
        """Start ``emulator.py --port PORT`` (stderr to `log_path`) and wait at
        most `timeout` seconds for its READY line. `quiet`: no line per request
        in the log (benchmarks: the logging is a few percent of the emulator's CPU)."""
        log = open(log_path, "wb")
        process = subprocess.Popen(
            [python, str(EMULATOR), "--port", str(port)] + (["--quiet"] if quiet else []),
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=without_aws_env(),
            start_new_session=True,
        )
        log.close()
        emulator = cls("", process, log_path)
        line = emulator._first_line(timeout)
        if not line.startswith(b"READY "):
            emulator.stop()
            raise RuntimeError(f"emulator did not become ready ({line!r}); log:\n{emulator.log_tail()}")
        emulator.url = line.split()[1].decode()
        emulator.seed = Seed(emulator.url)
        return emulator

    def _first_line(self, timeout: float) -> bytes:
        """The first stdout line, or b"" on exit or timeout."""
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return b""
        return self.process.stdout.readline().strip()

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Stop the emulator process (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body.startswith((b"{", b"[")) else body

    def reset(self) -> None:
        """Wipe all AWS state, the fault table and the request counters."""
        self._call("POST", "/moto-api/reset")

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        """Replace the fault table (see emulator.py for the rule fields)."""
        self._call("POST", "/_testbed/faults", rules)

    def faults(self) -> list[dict[str, Any]]:
        """The fault table as the emulator holds it (defaults filled in, `times` counting down)."""
        return self._call("GET", "/_testbed/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_testbed/faults")

    def requests(self) -> dict[str, Any]:
        """``{"requests": [{"region", "service", "action", "account", "count"}, ...], "total": N,
        "read_cache_hits": M}`` (M: reads the emulator's ReadCache answered instead of moto)."""
        return self._call("GET", "/_testbed/requests")

    def clear_requests(self) -> None:
        self._call("DELETE", "/_testbed/requests")

    def held(self) -> int:
        """Requests a `drop` fault is holding unanswered right now."""
        return self._call("GET", "/_testbed/held")["held"]

    def count(
        self,
        region: str | None = None,
        service: str | None = None,
        action: str | None = None,
        account: str | None = None,
    ) -> int:
        """Requests seen matching the given region/service/action/account (None = any)."""
        wanted = {"region": region, "service": service, "action": action, "account": account}
        return sum(
            row["count"]
            for row in self.requests()["requests"]
            if all(v is None or row[k] == v for k, v in wanted.items())
        )

    def client(self, service: str, region: str) -> Any:
        return client(self.url, service, region)

    def set_server_tag_filtering(self, enabled: bool) -> None:
        """Off: DescribeNatGateways ignores tag filters, like stock moto (reset turns it on)."""
        self._call("POST", "/_testbed/settings", {"nat_gateway_tag_filters": enabled})

    def set_read_cache(self, enabled: bool) -> None:
        """Off: every read reaches moto, even a repeated one (reset turns it on; see ReadCache)."""
        self._call("POST", "/_testbed/settings", {"read_cache": enabled})


class Seed:
    """Creates resources in the emulator at `endpoint`, one boto3 client per region."""

    def __init__(self, endpoint: str, account_id: str = DEFAULT_ACCOUNT):
        self.endpoint = endpoint
        self.account_id = account_id
        self._credentials = None if account_id == DEFAULT_ACCOUNT else assumed_credentials(endpoint, account_id)
        self._clients: dict[str, Any] = {}

    def in_account(self, account_id: str) -> "Seed":
        """The same helpers, acting in `account_id` through AssumeRole."""
        return Seed(self.endpoint, account_id)

    def ec2(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = client(self.endpoint, "ec2", region, self._credentials)
        return self._clients[region]

    def elastic_ip(
        self, region: str, tags: dict[str, str], ip: str | None = None, associate: bool = False
    ) -> str:
        """An Elastic IP (`ip`, else a random one) tagged `tags`; with `associate`,
        attached to a new network interface in the seed subnet (as on a proxy
        instance or NLB). Returns its allocation id."""
        ec2 = self.ec2(region)
        spec = [{"ResourceType": "elastic-ip", "Tags": tag_list(tags)}] if tags else []
        kwargs = {"Address": ip} if ip else {}
        allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=spec, **kwargs)["AllocationId"]
        if associate:
            _, subnet_id = self.network(region)
            eni = ec2.create_network_interface(SubnetId=subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
            ec2.associate_address(AllocationId=allocation, NetworkInterfaceId=eni)
        return allocation

    def regional_nat_gateway(self, region: str, tags: dict[str, str], ips: list[str]) -> str:
        """A regional NAT gateway (no subnet) in the seed VPC holding `ips`, one
        zone per IP (``<region>a``, ``<region>b``, ...). Returns its id."""
        ec2 = self.ec2(region)
        vpc_id, _ = self.network(region)
        zones = [
            {
                "AvailabilityZone": f"{region}{chr(ord('a') + n)}",
                "AllocationIds": [ec2.allocate_address(Domain="vpc", Address=ip)["AllocationId"]],
            }
            for n, ip in enumerate(ips)
        ]
        return ec2.create_nat_gateway(
            AvailabilityMode="regional",
            VpcId=vpc_id,
            AvailabilityZoneAddresses=zones,
            TagSpecifications=[{"ResourceType": "natgateway", "Tags": tag_list(tags)}] if tags else [],
        )["NatGateway"]["NatGatewayId"]

    def network(self, region: str) -> tuple[str, str]:
        """(vpc_id, subnet_id) of the region's seed network, created on first use."""
        ec2 = self.ec2(region)
        seed_filter = [{"Name": f"tag:{SEED_TAG['Key']}", "Values": [SEED_TAG["Value"]]}]
        vpcs = ec2.describe_vpcs(Filters=seed_filter)["Vpcs"]
        if vpcs:
            vpc_id = vpcs[0]["VpcId"]
        else:
            vpc_id = ec2.create_vpc(
                CidrBlock=VPC_CIDR,
                TagSpecifications=[{"ResourceType": "vpc", "Tags": [SEED_TAG]}],
            )["Vpc"]["VpcId"]
        subnets = ec2.describe_subnets(
            Filters=seed_filter + [{"Name": "vpc-id", "Values": [vpc_id]}]
        )["Subnets"]
        if subnets:
            return vpc_id, subnets[0]["SubnetId"]
        subnet_id = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=SUBNET_CIDR,
            TagSpecifications=[{"ResourceType": "subnet", "Tags": [SEED_TAG]}],
        )["Subnet"]["SubnetId"]
        return vpc_id, subnet_id

    def nat_gateway(
        self,
        region: str,
        tags: dict[str, str],
        ips: list[str] | None = None,
        state: str = "available",
    ) -> str:
        """A public NAT gateway holding every IP in `ips` (primary first; one
        random IP when empty), tagged `tags`, left in `state`
        ("available" or "deleted"). Returns its id."""
        if state not in ("available", "deleted"):
            raise ValueError(f"state must be 'available' or 'deleted', not {state!r}")
        ec2 = self.ec2(region)
        _, subnet_id = self.network(region)
        allocations = [
            ec2.allocate_address(Domain="vpc", Address=ip)["AllocationId"] for ip in ips or []
        ] or [ec2.allocate_address(Domain="vpc")["AllocationId"]]
        gateway = ec2.create_nat_gateway(
            SubnetId=subnet_id,
            AllocationId=allocations[0],
            SecondaryAllocationIds=allocations[1:],
            TagSpecifications=[{"ResourceType": "natgateway", "Tags": tag_list(tags)}] if tags else [],
        )["NatGateway"]
        if state == "deleted":
            self.delete_nat_gateway(region, gateway["NatGatewayId"])
        return gateway["NatGatewayId"]

    def nat_gateways(
        self, region: str, tags: dict[str, str], ips: list[str], workers: int = 4
    ) -> list[str]:
        """Many available single-address gateways at once, one per IP in `ips`,
        all tagged `tags`: the AllocateAddress + CreateNatGateway pairs are spread
        over `workers` threads (the emulator serves requests concurrently), so
        1,200 gateways take about 20 s instead of a minute. Returns their ids
        in the order of `ips`."""
        _, subnet_id = self.network(region)
        spec = [{"ResourceType": "natgateway", "Tags": tag_list(tags)}] if tags else []
        # Clients are thread-safe once built; building them is not, so build them here.
        clients = [client(self.endpoint, "ec2", region, self._credentials) for _ in range(max(1, workers))]
        ids: list[str | None] = [None] * len(ips)

        def work(worker: int) -> None:
            ec2 = clients[worker]
            for n in range(worker, len(ips), len(clients)):
                allocation = ec2.allocate_address(Domain="vpc", Address=ips[n])["AllocationId"]
                ids[n] = ec2.create_nat_gateway(
                    SubnetId=subnet_id, AllocationId=allocation, TagSpecifications=spec
                )["NatGateway"]["NatGatewayId"]

        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            for future in [pool.submit(work, w) for w in range(len(clients))]:
                future.result()  # re-raises a worker's error
        return [i for i in ids if i is not None]

    def delete_nat_gateway(self, region: str, nat_gateway_id: str) -> None:
        self.ec2(region).delete_nat_gateway(NatGatewayId=nat_gateway_id)

    def security_group(self, region: str, name: str, tags: dict[str, str] | None = None) -> str:
        """A security group named `name` in the region's seed VPC. Returns its id."""
        vpc_id, _ = self.network(region)
        spec = [{"ResourceType": "security-group", "Tags": tag_list(tags)}] if tags else []
        return self.ec2(region).create_security_group(
            GroupName=name,
            Description=f"test bed group {name}",
            VpcId=vpc_id,
            TagSpecifications=spec,
        )["GroupId"]

    def bucket(self, name: str, region: str = "us-east-1") -> str:
        """An empty S3 bucket named `name` in `region`. Returns the name."""
        s3 = client(self.endpoint, "s3", region)
        location = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}
        }
        s3.create_bucket(Bucket=name, **location)
        return name

    def distribution(self, origin_bucket: str = "ip-ranges") -> str:
        """A CloudFront distribution with `origin_bucket` as its S3 origin. Returns its id."""
        cloudfront = client(self.endpoint, "cloudfront", "us-east-1")
        origin = {
            "Id": "s3",
            "DomainName": f"{origin_bucket}.s3.amazonaws.com",
            "S3OriginConfig": {"OriginAccessIdentity": ""},
        }
        return cloudfront.create_distribution(
            DistributionConfig={
                "CallerReference": f"seed-{origin_bucket}-{os.urandom(4).hex()}",
                "Comment": "test bed distribution",
                "Enabled": True,
                "Origins": {"Quantity": 1, "Items": [origin]},
                "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all"},
            }
        )["Distribution"]["Id"]

    def ingress_rule(
        self,
        region: str,
        group_id: str,
        cidr: str,
        port: int,
        tags: dict[str, str] | None = None,
        protocol: str = "tcp",
    ) -> str:
        """One inbound rule (`protocol`, `port`, `cidr`) in `group_id`, tagged
        `tags` when it is created. Returns its ``sgr-`` id."""
        ranges = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
        spec = [{"ResourceType": "security-group-rule", "Tags": tag_list(tags)}] if tags else []
        rules = self.ec2(region).authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[{"IpProtocol": protocol, "FromPort": port, "ToPort": port, **ranges}],
            TagSpecifications=spec,
        )["SecurityGroupRules"]
        if len(rules) != 1:
            raise RuntimeError(f"expected one new rule, got {rules!r}")
        return rules[0]["SecurityGroupRuleId"]

    def managed_rule(
        self,
        region: str,
        group_id: str,
        cidr: str,
        port: int,
        expires_at: datetime | str,
        grant_id: str = "grant-00000000000000a1",
        extra_tags: dict[str, str] | None = None,
    ) -> str:
        """A rule of a temporary-ingress grant, tagged as the provider tags it
        (managed-by, grant-id, expires-at, created-at, granted-by). `expires_at`
        is a UTC datetime or an already formatted tag value. Returns its id."""
        tags = {
            MANAGED_BY: MANAGED_BY_VALUE,
            GRANT_ID: grant_id,
            EXPIRES_AT: expires_at if isinstance(expires_at, str) else self.rfc3339(expires_at),
            CREATED_AT: "2020-01-01T00:00:00Z",
            GRANTED_BY: SEED_CALLER,
            **(extra_tags or {}),
        }
        return self.ingress_rule(region, group_id, cidr, port, tags)

    @staticmethod
    def rfc3339(instant: datetime) -> str:
        """`instant` as the tag contract writes it: RFC 3339 UTC, whole seconds."""
        return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Seeds the emulator for scripts/quickstart: NAT gateways in three regions,
some tagged Name=*proxy* (one with two addresses), some not, one deleted; a
bastion security group in us-west-2 (its id is printed on stdout) holding one
rule of an expired grant nobody renewed (for the sweep); and the S3 bucket
`allowlist-quickstart` in us-east-1 that the publisher writes to.

Usage: python testbed/quickstart_seed.py ENDPOINT
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import Seed, client  # noqa: E402

BUCKET = "allowlist-quickstart"


def main(endpoint: str) -> None:
    seed = Seed(endpoint)
    seed.nat_gateway("us-west-2", {"Name": "egress-proxy-a"}, ips=["198.51.100.10", "198.51.100.11"])
    seed.nat_gateway("us-west-2", {"Name": "build-runners"}, ips=["203.0.113.10"])
    seed.nat_gateway("eu-central-1", {"Name": "egress-proxy-eu"}, ips=["198.51.100.20"])
    seed.nat_gateway("eu-central-1", {"Name": "old-proxy"}, ips=["203.0.113.20"], state="deleted")
    seed.nat_gateway("ap-southeast-2", {"Name": "syd-proxy"}, ips=["198.51.100.30"])
    seed.nat_gateway("ap-southeast-2", {}, ips=["203.0.113.30"])
    bastion = seed.security_group("us-west-2", "bastion")
    # What an expired grant leaves behind when nobody runs Terraform again.
    expired = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    seed.ec2("us-west-2").authorize_security_group_ingress(
        GroupId=bastion,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": "192.0.2.44/32", "Description": "last week's access"}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": [
            {"Key": "allowlist:managed-by", "Value": "allowlist"},
            {"Key": "allowlist:grant-id", "Value": "quickstart-expired"},
            {"Key": "allowlist:expires-at", "Value": expired},
            {"Key": "allowlist:granted-by", "Value": "arn:aws:iam::123456789012:user/former-contractor"},
        ]}],
    )
    client(endpoint, "s3", "us-east-1").create_bucket(Bucket=BUCKET)
    print(
        "seeded 6 NAT gateways in us-west-2, eu-central-1, ap-southeast-2 (4 addresses tagged *proxy*),"
        f" security group {bastion} (bastion, us-west-2) with one expired grant,"
        f" and bucket {BUCKET}",
        file=sys.stderr,
    )
    print(bastion)


if __name__ == "__main__":
    main(sys.argv[1])

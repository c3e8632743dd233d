"""Seeds the emulator for scripts/quickstart: NAT gateways in three regions,
some tagged Name=*proxy* (one with two addresses), some not, one deleted; and
a bastion security group in us-west-2, whose id is printed on stdout.

Usage: python testbed/quickstart_seed.py ENDPOINT
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import Seed  # noqa: E402


def main(endpoint: str) -> None:
    seed = Seed(endpoint)
    seed.nat_gateway("us-west-2", {"Name": "egress-proxy-a"}, ips=["198.51.100.10", "198.51.100.11"])
    seed.nat_gateway("us-west-2", {"Name": "build-runners"}, ips=["203.0.113.10"])
    seed.nat_gateway("eu-central-1", {"Name": "egress-proxy-eu"}, ips=["198.51.100.20"])
    seed.nat_gateway("eu-central-1", {"Name": "old-proxy"}, ips=["203.0.113.20"], state="deleted")
    seed.nat_gateway("ap-southeast-2", {"Name": "syd-proxy"}, ips=["198.51.100.30"])
    seed.nat_gateway("ap-southeast-2", {}, ips=["203.0.113.30"])
    bastion = seed.security_group("us-west-2", "bastion")
    print(
        "seeded 6 NAT gateways in us-west-2, eu-central-1, ap-southeast-2 (4 addresses tagged *proxy*)"
        f" and security group {bastion} (bastion, us-west-2)",
        file=sys.stderr,
    )
    print(bastion)


if __name__ == "__main__":
    main(sys.argv[1])

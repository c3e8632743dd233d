provider "allowlist" {
  # Where egress lookups look by default; ["all"] means every enabled region.
  egress_regions = ["us-west-2", "eu-central-1", "ap-southeast-2"]

  # Optional: the home region (DescribeRegions, STS) and the default region of ingress grants.
  region = "us-west-2"

  # Optional guardrail for temporary ingress grants.
  max_ttl = "24h"

  # Optional: time allowed for one AWS call, retries included (default 60s).
  request_timeout = "60s"

  # Optional: assume a role with the credentials found (as hashicorp/aws does);
  # account roles of allowlist_egress_ips are then assumed from it.
  # assume_role {
  #   role_arn     = "arn:aws:iam::111111111111:role/deployer"
  #   session_name = "allowlist"
  # }
}

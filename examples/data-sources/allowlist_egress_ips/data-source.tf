# Every public IP of every available NAT gateway named like "*proxy*",
# in the provider's egress_regions, looked up concurrently.
data "allowlist_egress_ips" "proxies" {
  tags = { Name = "*proxy*" }

  # Refuse to produce a list shorter than this (protects downstream firewalls).
  min_count = 2
}

# Narrow with raw EC2 filters and explicit regions.
data "allowlist_egress_ips" "prod_eu" {
  regions = ["eu-central-1", "eu-west-1"]
  tags    = { env = "prod" }

  filter {
    name   = "vpc-id"
    values = ["vpc-0123456789abcdef0"]
  }
}

output "egress_cidrs" {
  value = data.allowlist_egress_ips.proxies.cidrs
}

# The whole estate: NAT gateways and tagged Elastic IPs (attached or not) of
# this account and two others, reached through a reader role in each.
data "allowlist_egress_ips" "estate" {
  tags    = { Name = "*proxy*" }
  sources = ["nat_gateway", "elastic_ip"]

  account { role_arn = "arn:aws:iam::222222222222:role/allowlist-egress-reader" }
  account {
    role_arn    = "arn:aws:iam::333333333333:role/allowlist-egress-reader"
    external_id = "tenant-333"
  }

  # Without account or organization blocks the current account is looked in
  # by default; with them, only when asked.
  include_current_account = true
}

# One object per address: where it comes from.
output "estate_addresses" {
  value = [for a in data.allowlist_egress_ips.estate.addresses : "${a.cidr} ${a.source} ${a.resource_id} ${a.account_id}/${a.region}"]
}

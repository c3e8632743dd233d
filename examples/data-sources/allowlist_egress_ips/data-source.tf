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

# The quickstart: our egress IPs across three regions, in one lookup.
# scripts/quickstart runs this against a local AWS emulator (AWS_ENDPOINT_URL).
terraform {
  required_providers {
    allowlist = { source = "allowlist/allowlist" }
  }
}

provider "allowlist" {
  egress_regions = ["us-west-2", "eu-central-1", "ap-southeast-2"]
}

data "allowlist_egress_ips" "proxies" {
  tags      = { Name = "*proxy*" }
  min_count = 1
}

output "cidrs" {
  value = data.allowlist_egress_ips.proxies.cidrs
}

output "nat_gateways" {
  value = data.allowlist_egress_ips.proxies.nat_gateways
}

output "sync_token" {
  value = data.allowlist_egress_ips.proxies.sync_token
}

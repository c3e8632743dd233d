# The quickstart: our egress IPs across three regions in one lookup, and a
# temporary grant for whoever runs it. scripts/quickstart runs this against a
# local AWS emulator (AWS_ENDPOINT_URL) and passes the variables below.
terraform {
  required_providers {
    allowlist = { source = "allowlist/allowlist" }
  }
}

variable "bastion_security_group_id" {
  description = "The security group to open for a day."
  type        = string
}

variable "ip_lookup_url" {
  description = "Where the provider detects your public IP."
  type        = string
  default     = "https://checkip.amazonaws.com"
}

provider "allowlist" {
  region         = "us-west-2"
  egress_regions = ["us-west-2", "eu-central-1", "ap-southeast-2"]
  ip_lookup_url  = var.ip_lookup_url
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

resource "allowlist_temporary_ingress" "me" {
  security_group_ids = [var.bastion_security_group_id]
  ports              = [22]
  ttl                = "24h"
  description        = "quickstart access"
}

output "granted" {
  value = {
    cidr_blocks = allowlist_temporary_ingress.me.cidr_blocks
    rule_ids    = allowlist_temporary_ingress.me.rule_ids
    expires_at  = allowlist_temporary_ingress.me.expires_at
    granted_by  = allowlist_temporary_ingress.me.granted_by
  }
}

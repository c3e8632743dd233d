# Let the person running Terraform in to the bastion for a day: their current
# public IP (detected) on SSH and HTTPS, in two security groups.
resource "allowlist_temporary_ingress" "oncall" {
  security_group_ids = ["sg-0123456789abcdef0", "sg-0fedcba9876543210"]
  ports              = [22, 443]
  ttl                = "24h"
  description        = "on-call access"
  tags               = { ticket = "OPS-1234" }
}

# Explicit CIDRs (IPv4 and IPv6), a port range and UDP.
resource "allowlist_temporary_ingress" "vpn_test" {
  security_group_ids = ["sg-0123456789abcdef0"]
  protocol           = "udp"
  port_ranges        = ["51820-51821"]
  cidr_blocks        = ["203.0.113.0/28", "2001:db8:1::/64"]
  ttl                = "90m"
}

output "oncall_expires_at" {
  value = allowlist_temporary_ingress.oncall.expires_at
}

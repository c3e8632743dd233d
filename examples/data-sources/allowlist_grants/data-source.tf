# Who can reach the database right now, and until when.
data "allowlist_grants" "db" {
  security_group_ids = ["sg-0123456789abcdef0"]
}

output "db_access" {
  value = [
    for g in data.allowlist_grants.db.grants :
    "${join(",", g.cidr_blocks)} until ${g.expires_at} (${g.granted_by}${g.ephemeral ? ", CI run" : ""})"
  ]
}

# Every grant in two regions, expired ones the sweep has not removed yet included.
data "allowlist_grants" "audit" {
  regions         = ["us-west-2", "eu-central-1"]
  include_expired = true
}

output "stale_rules" {
  value = flatten([for g in data.allowlist_grants.audit.grants : g.rule_ids if g.expired])
}

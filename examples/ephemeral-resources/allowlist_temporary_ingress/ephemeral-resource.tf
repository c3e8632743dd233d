# Open the database to this CI run only: granted when the run first needs it, renewed while
# it lasts, revoked when it ends. Nothing is stored in state.
ephemeral "allowlist_temporary_ingress" "ci" {
  security_group_ids = ["sg-0123456789abcdef0"]
  ports              = [5432]
  ttl                = "15m" # also the most a killed run leaves open
  description        = "ci run"
}

# A later step of the same run that needs the access, e.g. a PostgreSQL provider whose
# configuration waits for the grant.
provider "postgresql" {
  host     = "db.internal.example.com"
  port     = 5432
  username = "ci"
  # Referencing the grant makes Terraform open it before this provider is configured.
  application_name = "ci-${ephemeral.allowlist_temporary_ingress.ci.id}"
}

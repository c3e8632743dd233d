# A grant is imported by its region and grant id (the allowlist:grant-id tag
# on each of its security group rules).
terraform import allowlist_temporary_ingress.oncall us-west-2/grant-0123456789abcdef

# The read-only role allowlist assumes in each member account: the egress
# lookup (allowlist_egress_ips `account`/`organization` blocks, publisher
# --assume-role / --organization-role) and, optionally, the sweep of expired
# temporary ingress. Apply it in every account to look in, or roll it out to a
# whole OU with stackset.yaml (new accounts included).

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

variable "region" {
  description = "Any region: IAM is global; the provider needs one to start."
  type        = string
  default     = "us-east-1"
}

variable "role_name" {
  description = "The same name in every account: what the organization block's role_name names."
  type        = string
  default     = "allowlist-egress-reader"
}

variable "trusted_principal_arn" {
  description = "Who may assume the role: the provider's or publisher's role in the tooling account, e.g. arn:aws:iam::111111111111:role/allowlist-publisher."
  type        = string
}

variable "external_id" {
  description = "The external id callers must pass (account block external_id, --external-id); empty for none."
  type        = string
  default     = ""
}

variable "allow_sweep" {
  description = "Also let the role sweep expired allowlist_temporary_ingress rules (allowlist-publisher sweep)."
  type        = bool
  default     = false
}

provider "aws" {
  region = var.region
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [var.trusted_principal_arn]
    }
    dynamic "condition" {
      for_each = var.external_id == "" ? [] : [var.external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "read" {
  statement {
    sid = "EgressLookup"
    actions = [
      "ec2:DescribeNatGateways",
      "ec2:DescribeAddresses",
      "ec2:DescribeRegions",
    ]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.allow_sweep ? [1] : []
    content {
      sid       = "SweepList"
      actions   = ["ec2:DescribeSecurityGroupRules"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.allow_sweep ? [1] : []
    content {
      sid       = "SweepRevokeOnlyOurs"
      actions   = ["ec2:RevokeSecurityGroupIngress"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role" "reader" {
  name                 = var.role_name
  description          = "allowlist: read egress IPs (and sweep expired temporary ingress)"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "read" {
  name   = "allowlist-egress-read"
  role   = aws_iam_role.reader.id
  policy = data.aws_iam_policy_document.read.json
}

# The caller's side, in the tooling account: permission to assume the role in
# every member account (and, for the organization block, to list the accounts).
data "aws_iam_policy_document" "caller" {
  statement {
    sid       = "AssumeReaderRoles"
    actions   = ["sts:AssumeRole"]
    resources = ["arn:aws:iam::*:role/${var.role_name}"]
  }
  statement {
    sid       = "ListOrganizationAccounts"
    actions   = ["organizations:ListAccounts"]
    resources = ["*"]
  }
}

output "role_arn" {
  value = aws_iam_role.reader.arn
}

output "caller_policy_json" {
  description = "Attach to the provider's or publisher's own role in the tooling account."
  value       = data.aws_iam_policy_document.caller.json
}

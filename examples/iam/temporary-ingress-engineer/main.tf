# An IAM policy for engineers who let themselves in with
# allowlist_temporary_ingress: only into security groups tagged for it, only
# rules that carry our tags, and only the calls the provider makes
# (core/src/ingress.rs). README.md says what IAM can and cannot enforce here.

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

variable "policy_name" {
  type    = string
  default = "allowlist-temporary-ingress-engineer"
}

variable "group_tag" {
  description = "Tag a security group must carry for grants to be made in it."
  type = object({
    key   = string
    value = string
  })
  default = {
    key   = "allowlist:temporary-ingress"
    value = "allowed"
  }
}

variable "user_tag_keys" {
  description = "Keys engineers may use in the resource's `tags` (besides the provider's allowlist:* tags)."
  type        = list(string)
  default     = ["ticket", "reason"]
}

variable "grant_regions" {
  description = "Regions grants may be made in; [\"*\"] = any."
  type        = list(string)
  default     = ["*"]
}

provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  arn_prefixes = [
    for region in var.grant_regions :
    "arn:${data.aws_partition.current.partition}:ec2:${region}:${data.aws_caller_identity.current.account_id}"
  ]
  group_arns = [for prefix in local.arn_prefixes : "${prefix}:security-group/*"]
  rule_arns  = [for prefix in local.arn_prefixes : "${prefix}:security-group-rule/*"]

  # The provider's own tags (allowlist:managed-by, :grant-id, :expires-at,
  # :created-at, :granted-by) plus the user tags allowed above.
  allowed_tag_keys = concat(["allowlist:*"], var.user_tag_keys)

  # A rule is ours once it carries this tag; the sweep relies on it.
  rule_is_ours = { "aws:ResourceTag/allowlist:managed-by" = "allowlist" }
}

resource "aws_iam_policy" "engineer" {
  name        = var.policy_name
  description = "allowlist_temporary_ingress: tagged, expiring ingress rules in security groups tagged ${var.group_tag.key}=${var.group_tag.value}"

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        # Plan, refresh and import (DescribeSecurityGroups: do the groups
        # exist; DescribeSecurityGroupRules: a grant's rules, by tag) and the
        # allowlist_egress_ips data source. Describe* cannot be scoped.
        Sid    = "ReadForPlanRefreshAndEgressLookup"
        Effect = "Allow"
        Action = [
          "ec2:DescribeSecurityGroups",
          "ec2:DescribeSecurityGroupRules",
          "ec2:DescribeNatGateways",
          "ec2:DescribeRegions",
        ]
        Resource = "*"
      },
      {
        # granted_by. STS answers this call without any permission; listed so
        # the policy reads as the provider's complete list.
        Sid      = "WhoIsGranting"
        Effect   = "Allow"
        Action   = "sts:GetCallerIdentity"
        Resource = "*"
      },
      {
        # Create (authorize), update descriptions (modify) and destroy or roll
        # back (revoke), in tagged groups only. IAM checks these three actions
        # against the security group; Revoke has no rule-level check at all.
        Sid    = "ChangeIngressOnlyInTaggedGroups"
        Effect = "Allow"
        Action = [
          "ec2:AuthorizeSecurityGroupIngress",
          "ec2:RevokeSecurityGroupIngress",
          "ec2:ModifySecurityGroupRules",
        ]
        Resource = local.group_arns
        Condition = {
          StringEquals = { "aws:ResourceTag/${var.group_tag.key}" = var.group_tag.value }
        }
      },
      {
        # The new rule itself: it must be created with our tags, an expiry
        # and a grant id, and no tag keys but ours. IAM evaluates this only
        # when the request has TagSpecifications (the provider always sends them).
        Sid      = "NewRulesCarryOurTags"
        Effect   = "Allow"
        Action   = "ec2:AuthorizeSecurityGroupIngress"
        Resource = local.rule_arns
        Condition = {
          StringEquals = { "aws:RequestTag/allowlist:managed-by" = "allowlist" }
          Null = {
            "aws:RequestTag/allowlist:expires-at" = "false"
            "aws:RequestTag/allowlist:grant-id"   = "false"
          }
          "ForAllValues:StringLike" = { "aws:TagKeys" = local.allowed_tag_keys }
        }
      },
      {
        # TagSpecifications are authorized as ec2:CreateTags; allow it only as
        # part of creating the rule.
        Sid      = "TagRulesAsTheyAreCreated"
        Effect   = "Allow"
        Action   = "ec2:CreateTags"
        Resource = local.rule_arns
        Condition = {
          StringEquals = {
            "ec2:CreateAction"                    = "AuthorizeSecurityGroupIngress"
            "aws:RequestTag/allowlist:managed-by" = "allowlist"
          }
          "ForAllValues:StringLike" = { "aws:TagKeys" = local.allowed_tag_keys }
        }
      },
      {
        # ttl changes (a new allowlist:expires-at), tag changes, and adopting
        # an expired grant's identical rule re-tag rules that are already ours.
        # allowlist:managed-by may be sent, but only with its one value.
        Sid      = "RetagOurRules"
        Effect   = "Allow"
        Action   = "ec2:CreateTags"
        Resource = local.rule_arns
        Condition = {
          StringEquals              = local.rule_is_ours
          StringEqualsIfExists      = { "aws:RequestTag/allowlist:managed-by" = "allowlist" }
          "ForAllValues:StringLike" = { "aws:TagKeys" = local.allowed_tag_keys }
        }
      },
      {
        # Description updates (ModifySecurityGroupRules is checked against the
        # group above and against the rule here).
        Sid       = "EditOurRules"
        Effect    = "Allow"
        Action    = "ec2:ModifySecurityGroupRules"
        Resource  = local.rule_arns
        Condition = { StringEquals = local.rule_is_ours }
      },
      ], length(var.user_tag_keys) == 0 ? [] : [
      {
        # Removing user tags dropped from `tags`: only those keys, never an
        # allowlist:* tag. DeleteTags without any tag key deletes every tag
        # (expiry included), so the request must name its keys.
        Sid      = "UntagUserTagsOfOurRules"
        Effect   = "Allow"
        Action   = "ec2:DeleteTags"
        Resource = local.rule_arns
        Condition = {
          StringEquals                = local.rule_is_ours
          Null                        = { "aws:TagKeys" = "false" }
          "ForAllValues:StringEquals" = { "aws:TagKeys" = var.user_tag_keys }
        }
      },
    ])
  })
}

output "policy_arn" {
  description = "Attach to the engineers' role, group or permission set."
  value       = aws_iam_policy.engineer.arn
}

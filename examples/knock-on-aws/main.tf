# allowlist-knock on AWS Lambda behind a function URL. The function URL has no
# IAM auth (callers have no AWS credentials): the function authenticates every
# request itself (OIDC bearer token or API key) before any AWS call. Its role
# may only change ingress rules of the doors' security groups, and only rules
# carrying allowlist's tags, so the scheduled sweep sees and expires them.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  arn_prefix = "arn:${data.aws_partition.current.partition}:ec2:${var.region}:${data.aws_caller_identity.current.account_id}"
  group_arns = [for id in var.door_group_ids : "${local.arn_prefix}:security-group/${id}"]
  rule_arns  = ["${local.arn_prefix}:security-group-rule/*"]

  # A rule is ours once it carries this tag; the sweep relies on it.
  rule_is_ours = { "aws:ResourceTag/allowlist:managed-by" = "allowlist" }
}

resource "aws_cloudwatch_log_group" "knock" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "knock" {
  name               = var.function_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "knock" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.knock.arn}:*"]
  }

  # Finding a caller's grant and the groups' rules. Describe* cannot be scoped.
  statement {
    sid       = "ReadRules"
    actions   = ["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"]
    resources = ["*"]
  }

  # Open, close and re-describe: only in the doors' groups.
  statement {
    sid       = "ChangeIngressOfTheDoorsGroups"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:ModifySecurityGroupRules"]
    resources = local.group_arns
  }

  # A new rule must be created with our tags (expiry and grant id included).
  statement {
    sid       = "NewRulesCarryOurTags"
    actions   = ["ec2:AuthorizeSecurityGroupIngress"]
    resources = local.rule_arns
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/allowlist:managed-by"
      values   = ["allowlist"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/allowlist:expires-at"
      values   = ["false"]
    }
    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["allowlist:*"]
    }
  }

  # Tags land with the rule (TagSpecifications are authorized as CreateTags).
  statement {
    sid       = "TagRulesAsTheyAreCreated"
    actions   = ["ec2:CreateTags"]
    resources = local.rule_arns
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["AuthorizeSecurityGroupIngress"]
    }
    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["allowlist:*"]
    }
  }

  # Extending a grant, and joining or leaving a rule another grant shares:
  # only our tags, only on our rules.
  statement {
    sid       = "RetagOurRules"
    actions   = ["ec2:CreateTags", "ec2:ModifySecurityGroupRules"]
    resources = local.rule_arns
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/allowlist:managed-by"
      values   = ["allowlist"]
    }
    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["allowlist:*"]
    }
  }

  # Leaving a shared rule removes the leaver's holder and releasing tags only
  # (DeleteTags without keys would delete every tag, so keys are required).
  statement {
    sid       = "UntagOurHoldsOnly"
    actions   = ["ec2:DeleteTags"]
    resources = local.rule_arns
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/allowlist:managed-by"
      values   = ["allowlist"]
    }
    condition {
      test     = "Null"
      variable = "aws:TagKeys"
      values   = ["false"]
    }
    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["allowlist:holder:*", "allowlist:releasing:*"]
    }
  }
}

resource "aws_iam_role_policy" "knock" {
  name   = "knock"
  role   = aws_iam_role.knock.id
  policy = data.aws_iam_policy_document.knock.json
}

resource "aws_lambda_function" "knock" {
  function_name    = var.function_name
  role             = aws_iam_role.knock.arn
  filename         = var.package
  source_code_hash = filebase64sha256(var.package)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["x86_64"]
  memory_size      = 128
  timeout          = 30

  # A ceiling on concurrent executions: a flood of requests costs at most this
  # many environments, and AWS calls, at a time.
  reserved_concurrent_executions = var.reserved_concurrency

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.knock.name
  }

  environment {
    variables = merge(
      {
        ALLOWLIST_KNOCK_CONFIG     = "doors.toml"
        ALLOWLIST_KNOCK_API_KEYS   = "keys.toml"
        ALLOWLIST_KNOCK_LOG_FORMAT = "json"
      },
      var.oidc_issuer == null ? {} : {
        ALLOWLIST_KNOCK_OIDC_ISSUER   = var.oidc_issuer
        ALLOWLIST_KNOCK_OIDC_AUDIENCE = var.oidc_audience
      },
    )
  }

  depends_on = [aws_iam_role_policy.knock]
}

resource "aws_lambda_function_url" "knock" {
  function_name = aws_lambda_function.knock.function_name
  # Authentication is the function's own (OIDC or API key), before any AWS call.
  authorization_type = "NONE"
}

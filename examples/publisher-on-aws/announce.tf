# Push, not poll: an SNS topic announcing every change of the published list
# (the body has the four fields of AWS's AmazonIpSpaceChanged messages), and a
# managed prefix list kept equal to the published IPv4 prefixes, shared with
# customer accounts through AWS RAM so their security groups can reference it.
# README.md, "Telling customers", has the consumer side.

locals {
  announce = var.sns_topic_enabled

  # The prefix list made here (home region) plus any made elsewhere.
  prefix_lists = concat(
    var.prefix_list_enabled ? ["${var.region}=${aws_ec2_managed_prefix_list.egress[0].id}"] : [],
    var.extra_prefix_lists,
  )
  prefix_list_arns = [
    for list in local.prefix_lists :
    "arn:${local.partition}:ec2:${split("=", list)[0]}:${local.account_id}:prefix-list/${split("=", list)[1]}"
  ]

  # Read by `publish` (publisher/README.md).
  push_environment = concat(
    local.announce ? [
      { name = "ALLOWLIST_SNS_TOPIC_ARN", value = aws_sns_topic.changes[0].arn },
      { name = "ALLOWLIST_PUBLIC_URL", value = "https://${var.domain_name}/${local.json_key}" },
    ] : [],
    length(local.prefix_lists) == 0 ? [] : [
      { name = "ALLOWLIST_PREFIX_LISTS", value = join(",", local.prefix_lists) },
      { name = "ALLOWLIST_PREFIX_LIST_GROW", value = tostring(var.prefix_list_grow) },
    ],
  )
}

# --- SNS: one message per change ---------------------------------------------

resource "aws_sns_topic" "changes" {
  count = local.announce ? 1 : 0

  name         = "${var.name}-changes"
  display_name = "Egress IP ranges changed"
}

# Who may subscribe: the listed accounts, or anyone (as AWS's own
# AmazonIpSpaceChanged topic allows), only over SQS, Lambda, email or HTTPS.
# Only this account publishes (the publish role, by its IAM policy).
resource "aws_sns_topic_policy" "changes" {
  count = local.announce && (var.sns_subscribe_anyone || length(var.sns_subscriber_accounts) > 0) ? 1 : 0

  arn = aws_sns_topic.changes[0].arn

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "OwnerManagesTheTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission",
          "sns:RemovePermission", "sns:DeleteTopic", "sns:Subscribe",
          "sns:ListSubscriptionsByTopic", "sns:Publish",
        ]
        Resource = aws_sns_topic.changes[0].arn
      },
      {
        Sid    = "CustomersSubscribe"
        Effect = "Allow"
        Principal = {
          AWS = var.sns_subscribe_anyone ? ["*"] : [
            for account in var.sns_subscriber_accounts : "arn:${local.partition}:iam::${account}:root"
          ]
        }
        Action   = ["sns:Subscribe", "sns:Receive"]
        Resource = aws_sns_topic.changes[0].arn
        Condition = {
          StringEquals = { "sns:Protocol" = ["sqs", "lambda", "email", "https"] }
        }
      },
    ]
  })
}

# --- The managed prefix list, shared through RAM ------------------------------

resource "aws_ec2_managed_prefix_list" "egress" {
  count = var.prefix_list_enabled ? 1 : 0

  name           = "${var.name}-egress-ipv4"
  address_family = "IPv4"
  max_entries    = var.prefix_list_max_entries

  # The publisher owns the entries (and MaxEntries with prefix_list_grow):
  # Terraform creates the list and leaves its content alone.
  lifecycle {
    ignore_changes = [entry, max_entries]
  }
}

resource "aws_ram_resource_share" "egress" {
  count = var.prefix_list_enabled && length(var.prefix_list_share_principals) > 0 ? 1 : 0

  name = "${var.name}-egress-prefix-list"
  # Outside your AWS Organization the customer accepts the invitation.
  allow_external_principals = true
}

resource "aws_ram_resource_association" "egress" {
  count = length(aws_ram_resource_share.egress)

  resource_arn       = aws_ec2_managed_prefix_list.egress[0].arn
  resource_share_arn = aws_ram_resource_share.egress[0].arn
}

resource "aws_ram_principal_association" "egress" {
  for_each = length(aws_ram_resource_share.egress) > 0 ? toset(var.prefix_list_share_principals) : toset([])

  principal          = each.value
  resource_share_arn = aws_ram_resource_share.egress[0].arn
}

# --- What `publish` may call for them ----------------------------------------

resource "aws_iam_role_policy" "publish_push" {
  count = local.announce || length(local.prefix_lists) > 0 ? 1 : 0

  name = "announce-and-sync-prefix-lists"
  role = aws_iam_role.publish.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      for statement in [
        {
          Sid      = "AnnounceChanges"
          Effect   = "Allow"
          Action   = ["sns:Publish"]
          Resource = local.announce ? [aws_sns_topic.changes[0].arn] : []
        },
        {
          # DescribeManagedPrefixLists cannot be scoped to a resource.
          Sid      = "ReadPrefixLists"
          Effect   = "Allow"
          Action   = ["ec2:DescribeManagedPrefixLists"]
          Resource = length(local.prefix_lists) > 0 ? ["*"] : []
        },
        {
          Sid      = "SyncOurPrefixLists"
          Effect   = "Allow"
          Action   = ["ec2:GetManagedPrefixListEntries", "ec2:ModifyManagedPrefixList"]
          Resource = local.prefix_list_arns
        },
      ] : statement if length(statement.Resource) > 0
    ]
  })
}

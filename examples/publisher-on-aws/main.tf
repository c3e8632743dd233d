# allowlist-publisher "the static way": a private S3 bucket behind CloudFront
# (Origin Access Control) serving ip-ranges.json and ip-ranges.txt on your own
# domain, and two one-shot Fargate tasks started every 5 minutes by EventBridge
# Scheduler: `publish` (writes only when the egress IPs changed) and `sweep`
# (revokes expired temporary ingress). README.md explains the choices.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  json_key       = "ip-ranges.json"
  text_key       = "ip-ranges.txt"
  published_keys = [local.json_key, local.text_key]
  published_arns = [for key in local.published_keys : "${aws_s3_bucket.site.arn}/${key}"]
}

# --- The bucket: private, owner-enforced, versioned, encrypted ---------------

resource "aws_s3_bucket" "site" {
  bucket = var.bucket_name
}

resource "aws_s3_bucket_public_access_block" "site" {
  bucket = aws_s3_bucket.site.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: every object belongs to the bucket owner, access is by policy only.
resource "aws_s3_bucket_ownership_controls" "site" {
  bucket = aws_s3_bucket.site.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Every publish keeps the previous document as a noncurrent version, so a bad
# publish can be rolled back (README.md, "Rolling back").
resource "aws_s3_bucket_versioning" "site" {
  bucket = aws_s3_bucket.site.id

  versioning_configuration {
    status = "Enabled"
  }
}

# SSE-S3: no KMS key, so neither CloudFront nor the publisher needs kms:*.
resource "aws_s3_bucket_server_side_encryption_configuration" "site" {
  bucket = aws_s3_bucket.site.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# The publisher writes only on change, so old versions are few; this only
# bounds the rollback window.
resource "aws_s3_bucket_lifecycle_configuration" "site" {
  bucket = aws_s3_bucket.site.id

  rule {
    id     = "expire-replaced-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.site]
}

resource "aws_s3_bucket_policy" "site" {
  bucket = aws_s3_bucket.site.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Only this distribution (signed by its OAC) may read, and only the
        # two published keys.
        Sid       = "CloudFrontReadsThePublishedFiles"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = local.published_arns
        Condition = {
          StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.site.arn }
        }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.site.arn, "${aws_s3_bucket.site.arn}/*"]
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
    ]
  })

  # Put the block in place first: the policy must be accepted as non-public.
  depends_on = [aws_s3_bucket_public_access_block.site]
}

# --- CloudFront in front of it ----------------------------------------------

# Origin Access Control (SigV4), not the legacy origin access identity.
resource "aws_cloudfront_origin_access_control" "site" {
  name                              = var.name
  description                       = "${var.name}: CloudFront signs every request to the bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# Honour the origin's Cache-Control (the publisher sets public, max-age=300):
# min 0 lets max-age through unchanged; default applies only when an object has
# no Cache-Control; max caps a mistaken long max-age. Nothing from the viewer is
# part of the key, so every customer shares one cached copy.
resource "aws_cloudfront_cache_policy" "origin_cache_control" {
  name        = "${var.name}-origin-cache-control"
  comment     = "Cache for the origin's Cache-Control max-age; no cookies, headers or query strings in the key"
  min_ttl     = 0
  default_ttl = 300
  max_ttl     = 3600

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_brotli = true
    enable_accept_encoding_gzip   = true

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_distribution" "site" {
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  comment         = "${var.name}: egress IP ranges"
  aliases         = [var.domain_name]
  price_class     = var.price_class

  origin {
    origin_id                = "s3"
    domain_name              = aws_s3_bucket.site.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.site.id
  }

  default_cache_behavior {
    target_origin_id       = "s3"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    viewer_protocol_policy = "redirect-to-https"
    cache_policy_id        = aws_cloudfront_cache_policy.origin_cache_control.id
    compress               = true
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = aws_acm_certificate_validation.site.certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }
}

# --- Certificate (us-east-1, DNS-validated) and the domain ------------------

resource "aws_acm_certificate" "site" {
  provider = aws.us_east_1

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = {
    for option in aws_acm_certificate.site.domain_validation_options : option.domain_name => {
      name   = option.resource_record_name
      type   = option.resource_record_type
      record = option.resource_record_value
    }
  }

  zone_id         = var.route53_zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

# Waits until ACM has seen the records and issued the certificate.
resource "aws_acm_certificate_validation" "site" {
  provider = aws.us_east_1

  certificate_arn         = aws_acm_certificate.site.arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

resource "aws_route53_record" "site" {
  for_each = toset(["A", "AAAA"])

  zone_id = var.route53_zone_id
  name    = var.domain_name
  type    = each.key

  alias {
    name                   = aws_cloudfront_distribution.site.domain_name
    zone_id                = aws_cloudfront_distribution.site.hosted_zone_id
    evaluate_target_health = false
  }
}

# --- IAM: one role per command, each with only what that command calls ------

locals {
  ecs_tasks_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role" "publish" {
  name               = "${var.name}-publish"
  description        = "allowlist-publisher publish: read NAT gateways, write the two published objects, invalidate CloudFront"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy" "publish" {
  name = "publish"
  role = aws_iam_role.publish.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Describe* calls have no resource-level permissions.
        Sid      = "FindEgressIps"
        Effect   = "Allow"
        Action   = ["ec2:DescribeNatGateways", "ec2:DescribeRegions"]
        Resource = "*"
      },
      {
        # Conditional writes (If-Match / If-None-Match) need nothing beyond PutObject.
        Sid      = "ReadAndWriteThePublishedObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = local.published_arns
      },
      {
        # Without it S3 answers a missing key with 403, not 404, and the first
        # publish fails. Left unconditioned: whether that 404-or-403 check
        # would honour an s3:prefix condition is not documented.
        Sid      = "MissingKeyIsNotFound"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = aws_s3_bucket.site.arn
      },
      {
        Sid      = "InvalidateAfterAChange"
        Effect   = "Allow"
        Action   = "cloudfront:CreateInvalidation"
        Resource = aws_cloudfront_distribution.site.arn
      },
    ]
  })
}

resource "aws_iam_role" "sweep" {
  name               = "${var.name}-sweep"
  description        = "allowlist-publisher sweep: list rules, revoke ingress in groups tagged for temporary access"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy" "sweep" {
  name = "sweep"
  role = aws_iam_role.sweep.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "FindExpiredRules"
        Effect   = "Allow"
        Action   = ["ec2:DescribeRegions", "ec2:DescribeSecurityGroupRules"]
        Resource = "*"
      },
      {
        # IAM authorizes RevokeSecurityGroupIngress on the security group only
        # (there is no security-group-rule resource for it), so the tag
        # condition can name the group, not the rule: inside a tagged group
        # this role could revoke any ingress rule. The sweep itself only
        # revokes, by id, rules tagged allowlist:managed-by=allowlist whose
        # allowlist:expires-at has passed. README.md has the details.
        Sid      = "RevokeOnlyInGroupsTaggedForTemporaryAccess"
        Effect   = "Allow"
        Action   = "ec2:RevokeSecurityGroupIngress"
        Resource = "arn:${local.partition}:ec2:*:${local.account_id}:security-group/*"
        Condition = {
          StringEquals = {
            "aws:ResourceTag/${var.temporary_ingress_group_tag.key}" = var.temporary_ingress_group_tag.value
          }
        }
      },
    ]
  })
}

# Pulls the image and writes the logs (AWS's managed policy for exactly that).
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS task execution role for allowlist-publisher: pull the image, write logs"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# --- Logs, and alarms on failed or missing runs -----------------------------

resource "aws_cloudwatch_log_group" "publisher" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

# Every failure is one JSON line with "level":"ERROR" (and "exit_code" for a
# failed command: 1 error, 3 refused by a guard).
resource "aws_cloudwatch_log_metric_filter" "errors" {
  name           = "${var.name}-errors"
  log_group_name = aws_cloudwatch_log_group.publisher.name
  pattern        = "{ $.level = \"ERROR\" }"

  metric_transformation {
    name      = "Errors"
    namespace = var.name
    value     = "1"
  }
}

# A successful publish logs "publish summary"; every sweep that ran logs
# "sweep summary". Their absence catches what logs no ERROR line: a task that
# never started (image, network, IAM), a usage error (exit 2), a crash.
resource "aws_cloudwatch_log_metric_filter" "summary" {
  for_each = {
    publish = "PublishSummaries"
    sweep   = "SweepSummaries"
  }

  name           = "${var.name}-${each.key}-summaries"
  log_group_name = aws_cloudwatch_log_group.publisher.name
  pattern        = "{ $.message = \"${each.key} summary\" }"

  metric_transformation {
    name      = each.value
    namespace = var.name
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.name}-errors"
  alarm_description   = "allowlist-publisher logged an ERROR: a failed publish (exit 1), a refusal by a guard (exit 3: a region failed, min-count, max-shrink) or a failed sweep. Logs Insights on ${aws_cloudwatch_log_group.publisher.name}: filter level = \"ERROR\""
  namespace           = var.name
  metric_name         = aws_cloudwatch_log_metric_filter.errors.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "no_summary" {
  for_each = aws_cloudwatch_log_metric_filter.summary

  alarm_name          = "${var.name}-${each.key}-not-succeeding"
  alarm_description   = "No successful ${each.key} summary in ${var.heartbeat_minutes} minutes: the task failed, was refused, or did not run. Check the stopped tasks of ${aws_ecs_cluster.publisher.name} and ${aws_cloudwatch_log_group.publisher.name}."
  namespace           = var.name
  metric_name         = each.value.metric_transformation[0].name
  statistic           = "Sum"
  period              = var.heartbeat_minutes * 60
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

# --- The tasks: one-shot `publish` and `sweep` on Fargate -------------------

resource "aws_ecs_cluster" "publisher" {
  name = var.name
}

# No ingress at all; HTTPS out to the AWS APIs and the image registry.
resource "aws_security_group" "task" {
  name        = "${var.name}-task"
  description = "allowlist-publisher tasks: no ingress, HTTPS out"
  vpc_id      = var.vpc_id

  egress {
    description      = "HTTPS to AWS APIs and the image registry"
    from_port        = 443
    to_port          = 443
    protocol         = "tcp"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }
}

locals {
  # Read by the publisher as flags (publisher/README.md). The home region is
  # the bucket's; logs are one JSON object per line.
  common_environment = [
    { name = "ALLOWLIST_REGION", value = var.region },
    { name = "ALLOWLIST_LOG_FORMAT", value = "json" },
  ]

  jobs = {
    publish = {
      role_arn = aws_iam_role.publish.arn
      environment = tolist(concat(local.common_environment, [
        { name = "ALLOWLIST_REGIONS", value = join(",", var.egress_regions) },
        { name = "ALLOWLIST_BUCKET", value = aws_s3_bucket.site.bucket },
        { name = "ALLOWLIST_KEY", value = local.json_key },
        { name = "ALLOWLIST_TEXT_KEY", value = local.text_key },
        { name = "ALLOWLIST_DISTRIBUTION_ID", value = aws_cloudfront_distribution.site.id },
        { name = "ALLOWLIST_MIN_COUNT", value = tostring(var.min_count) },
        ], length(var.nat_gateway_tags) == 0 ? [] : [
        { name = "ALLOWLIST_TAGS", value = join(",", [for key, value in var.nat_gateway_tags : "${key}=${value}"]) },
      ], local.push_environment))
    }
    sweep = {
      role_arn = aws_iam_role.sweep.arn
      environment = tolist(concat(local.common_environment, [
        { name = "ALLOWLIST_REGIONS", value = join(",", var.sweep_regions) },
        { name = "ALLOWLIST_GRACE", value = var.sweep_grace },
      ]))
    }
  }
}

resource "aws_ecs_task_definition" "job" {
  for_each = local.jobs

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = each.value.role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([{
    name      = "allowlist-publisher"
    image     = var.publisher_image
    essential = true
    # The image's entrypoint is the binary; this is the subcommand. Its exit
    # code (0, 1, 2, 3) is the task's containers[0].exitCode.
    command                = [each.key]
    environment            = each.value.environment
    readonlyRootFilesystem = true
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.publisher.name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

# --- The schedule: EventBridge Scheduler -> ecs:RunTask ----------------------

resource "aws_iam_role" "scheduler" {
  name        = "${var.name}-scheduler"
  description = "EventBridge Scheduler starts the allowlist-publisher tasks"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

resource "aws_iam_role_policy" "scheduler" {
  name = "run-publisher-tasks"
  role = aws_iam_role.scheduler.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "RunOurTasksInOurCluster"
        Effect = "Allow"
        Action = "ecs:RunTask"
        Resource = [
          for job in keys(local.jobs) :
          "arn:${local.partition}:ecs:${var.region}:${local.account_id}:task-definition/${var.name}-${job}:*"
        ]
        Condition = {
          ArnEquals = { "ecs:cluster" = aws_ecs_cluster.publisher.arn }
        }
      },
      {
        Sid      = "PassTheirRolesToEcsOnly"
        Effect   = "Allow"
        Action   = "iam:PassRole"
        Resource = [aws_iam_role.execution.arn, aws_iam_role.publish.arn, aws_iam_role.sweep.arn]
        Condition = {
          StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" }
        }
      },
    ]
  })
}

resource "aws_scheduler_schedule" "job" {
  for_each = aws_ecs_task_definition.job

  name                = "${var.name}-${each.key}"
  description         = "allowlist-publisher ${each.key}"
  schedule_expression = var.schedule_expression
  state               = var.schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.publisher.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn = each.value.arn
      launch_type         = "FARGATE"

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.task.id]
        assign_public_ip = var.assign_public_ip
      }
    }

    # Only a failed RunTask call is retried, never a task that ran and failed;
    # the next run is one interval away anyway.
    retry_policy {
      maximum_retry_attempts = 0
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

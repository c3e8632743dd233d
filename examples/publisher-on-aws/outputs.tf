output "ip_ranges_url" {
  description = "The published document (AWS's ip-ranges.json schema)."
  value       = "https://${var.domain_name}/${local.json_key}"
}

output "ip_ranges_text_url" {
  description = "The plain-text list, one CIDR per line (for firewall external lists)."
  value       = "https://${var.domain_name}/${local.text_key}"
}

output "bucket" {
  value = aws_s3_bucket.site.bucket
}

output "distribution_id" {
  value = aws_cloudfront_distribution.site.id
}

output "distribution_domain_name" {
  value = aws_cloudfront_distribution.site.domain_name
}

output "cluster_arn" {
  value = aws_ecs_cluster.publisher.arn
}

output "task_definition_arns" {
  description = "Run one by hand with `aws ecs run-task` (same network settings as the schedules) to test."
  value       = { for job, definition in aws_ecs_task_definition.job : job => definition.arn }
}

output "task_security_group_id" {
  description = "For running a task by hand."
  value       = aws_security_group.task.id
}

output "log_group" {
  value = aws_cloudwatch_log_group.publisher.name
}

output "role_arns" {
  value = {
    publish   = aws_iam_role.publish.arn
    sweep     = aws_iam_role.sweep.arn
    execution = aws_iam_role.execution.arn
    scheduler = aws_iam_role.scheduler.arn
  }
}

output "sns_topic_arn" {
  description = "Customers subscribe here (SQS, Lambda, email, HTTPS) to hear of every change."
  value       = local.announce ? aws_sns_topic.changes[0].arn : null
}

output "prefix_lists" {
  description = "The prefix lists the publisher keeps in sync (REGION=pl-ID); customers reference the id in their security groups."
  value       = local.prefix_lists
}

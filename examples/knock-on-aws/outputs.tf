output "url" {
  description = "The knock service: allowlist-knock open DOOR --url <this>."
  value       = aws_lambda_function_url.knock.function_url
}

output "role_arn" {
  description = "The function's role (least privilege over the doors' groups)."
  value       = aws_iam_role.knock.arn
}

variable "region" {
  description = "Region of the function (and, by default, of the doors)."
  type        = string
}

variable "function_name" {
  description = "Name of the Lambda function, its role and its log group."
  type        = string
  default     = "allowlist-knock"
}

variable "package" {
  description = "Path to the deployment zip: the allowlist-knock binary renamed `bootstrap`, plus doors.toml and keys.toml (see README.md)."
  type        = string
  default     = "allowlist-knock-lambda.zip"
}

variable "door_group_ids" {
  description = "Every security group any door opens (the doors file's security_group_ids): the only groups the function may change."
  type        = list(string)
}

variable "oidc_issuer" {
  description = "OIDC issuer whose tokens are accepted; null for API keys only."
  type        = string
  default     = "https://token.actions.githubusercontent.com"
}

variable "oidc_audience" {
  description = "The `aud` tokens must carry (for GitHub Actions: the audience the workflow asks for)."
  type        = string
  default     = "allowlist-knock"
}

variable "reserved_concurrency" {
  description = "Most concurrent executions: bounds the AWS calls and the cost a flood of requests can cause (rate limits are per execution environment)."
  type        = number
  default     = 5
}

variable "log_retention_days" {
  description = "Days the function's JSON logs are kept."
  type        = number
  default     = 90
}

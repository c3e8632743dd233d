variable "region" {
  description = "Region of the bucket, the ECS cluster and the schedules (the publisher's home region)."
  type        = string
}

variable "name" {
  description = "Prefix for the names of everything created here."
  type        = string
  default     = "allowlist-publisher"
}

variable "bucket_name" {
  description = "Name of the private S3 bucket holding ip-ranges.json and ip-ranges.txt (globally unique)."
  type        = string
}

variable "domain_name" {
  description = "Where customers fetch the list, e.g. ip-ranges.example.com."
  type        = string
}

variable "route53_zone_id" {
  description = "Route53 hosted zone that holds domain_name (for the certificate's DNS validation and the alias records)."
  type        = string
}

variable "price_class" {
  description = "CloudFront price class. Two small files: the cheapest class is usually enough."
  type        = string
  default     = "PriceClass_100"
}

variable "publisher_image" {
  description = "Container image running allowlist-publisher, e.g. built from ./Dockerfile and pushed to ECR."
  type        = string
}

variable "cpu_architecture" {
  description = "Architecture the image was built for: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "vpc_id" {
  description = "VPC of the Fargate tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the Fargate tasks. They need a route to the AWS APIs and the image registry (NAT gateway or VPC endpoints)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (only for public subnets without a NAT gateway)."
  type        = bool
  default     = false
}

variable "egress_regions" {
  description = "Regions whose NAT gateways are published (ALLOWLIST_REGIONS of publish); [\"all\"] = every enabled region."
  type        = list(string)
  default     = ["all"]
}

variable "nat_gateway_tags" {
  description = "Tags a NAT gateway must carry to be published (ALLOWLIST_TAGS); values may use * and ?."
  type        = map(string)
  default     = {}
}

variable "min_count" {
  description = "Refuse to publish fewer prefixes than this (ALLOWLIST_MIN_COUNT)."
  type        = number
  default     = 1
}

variable "sweep_regions" {
  description = "Regions swept for expired temporary ingress (ALLOWLIST_REGIONS of sweep)."
  type        = list(string)
  default     = ["all"]
}

variable "sweep_grace" {
  description = "Only revoke rules expired for longer than this (ALLOWLIST_GRACE): a margin for clock skew."
  type        = string
  default     = "2m"
}

variable "temporary_ingress_group_tag" {
  description = "Tag that marks the security groups temporary ingress may be granted in; the sweep may revoke ingress only in groups carrying it."
  type = object({
    key   = string
    value = string
  })
  default = {
    key   = "allowlist:temporary-ingress"
    value = "allowed"
  }
}

variable "schedule_expression" {
  description = "How often publish and sweep run (EventBridge Scheduler expression)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "schedule_enabled" {
  description = "Set to false to pause both schedules, e.g. while rolling back a bad publish by hand."
  type        = bool
  default     = true
}

variable "heartbeat_minutes" {
  description = "Alarm when publish (or sweep) has not logged a successful summary for this long. Keep it a few times the schedule's interval."
  type        = number
  default     = 15
}

variable "log_retention_days" {
  description = "How long the publisher's CloudWatch logs are kept."
  type        = number
  default     = 30
}

variable "noncurrent_version_days" {
  description = "How long replaced versions of the published objects are kept (the rollback window)."
  type        = number
  default     = 90
}

variable "alarm_actions" {
  description = "Where the alarms notify (e.g. SNS topic ARNs). Empty: the alarms only change state."
  type        = list(string)
  default     = []
}

variable "sns_topic_enabled" {
  description = "Create an SNS topic and announce every change on it (ALLOWLIST_SNS_TOPIC_ARN; the message's url is https://domain_name/ip-ranges.json)."
  type        = bool
  default     = true
}

variable "sns_subscriber_accounts" {
  description = "AWS account ids allowed to subscribe to the topic (over SQS, Lambda, email or HTTPS)."
  type        = list(string)
  default     = []
}

variable "sns_subscribe_anyone" {
  description = "Let any AWS account subscribe, as AWS's own AmazonIpSpaceChanged topic does."
  type        = bool
  default     = false
}

variable "prefix_list_enabled" {
  description = "Create an IPv4 managed prefix list in the home region and keep it equal to the published prefixes."
  type        = bool
  default     = true
}

variable "prefix_list_max_entries" {
  description = "MaxEntries of that list. Every security group rule that references the list counts as this many rules against the group's quota, so keep it close to the number of egress IPs."
  type        = number
  default     = 20
}

variable "prefix_list_grow" {
  description = "Let the publisher raise MaxEntries when the published set outgrows a list (ALLOWLIST_PREFIX_LIST_GROW). Off: such a publish is refused (exit 3) and the errors alarm fires."
  type        = bool
  default     = false
}

variable "prefix_list_share_principals" {
  description = "Who the prefix list is shared with through AWS RAM: account ids, or an organization / OU ARN."
  type        = list(string)
  default     = []
}

variable "extra_prefix_lists" {
  description = "Prefix lists made elsewhere (e.g. in other regions, with their own RAM shares) that the publisher keeps in sync too, as REGION=pl-ID."
  type        = list(string)
  default     = []
}

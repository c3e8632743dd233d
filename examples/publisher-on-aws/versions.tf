terraform {
  required_version = ">= 1.3.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # `terraform validate` was run against 5.100.0 (see README.md).
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  region = var.region
}

# CloudFront only uses ACM certificates issued in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

//! Logic shared by the allowlist Terraform provider and the `allowlist-publisher` binary.
//!
//! Everything here speaks in our own types (regions, NAT gateway addresses, typed errors that keep
//! the region and the AWS error code as data); AWS SDK types stay inside the functions that call
//! AWS. Nothing here knows about Terraform or gRPC.

pub mod accounts;
pub mod aws;
pub mod call_log;
pub mod caller;
pub mod clock;
pub mod document;
pub mod duration;
pub mod egress;
pub mod error;
pub mod estate;
pub mod ingress;
pub mod logging;
pub mod organization;
pub mod paging;
pub mod prefix_list;
pub mod region;
pub mod sweep;
pub mod url;
pub mod wildcard;

pub use aws::{Aws, AwsSettings};
pub use error::{AwsError, AwsErrorKind};

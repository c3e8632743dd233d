//! Following AWS `NextToken` pagination safely: a server that hands back a token it already gave
//! would make a naive loop run forever, so a repeated token is an error instead.

use crate::error::{AwsError, AwsErrorKind};
use std::collections::HashSet;

/// The pagination state of one listing.
#[derive(Debug)]
pub struct Pages {
    region: String,
    operation: &'static str,
    next: Option<String>,
    seen: HashSet<String>,
}

impl Pages {
    pub fn new(region: &str, operation: &'static str) -> Self {
        Pages {
            region: region.to_owned(),
            operation,
            next: None,
            seen: HashSet::new(),
        }
    }

    /// The token to send with the next request (None for the first page).
    pub fn token(&self) -> Option<String> {
        self.next.clone()
    }

    /// Records the token a page returned: `Ok(true)` when there is another page to fetch.
    pub fn advance(&mut self, next: Option<&str>) -> Result<bool, AwsError> {
        match next {
            Some(token) if !token.is_empty() => {
                if !self.seen.insert(token.to_owned()) {
                    return Err(AwsError {
                        region: self.region.clone(),
                        operation: self.operation,
                        kind: AwsErrorKind::Response,
                        code: None,
                        message: "pagination returned a NextToken it had already returned".into(),
                        status: None,
                    });
                }
                self.next = Some(token.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pages;

    #[test]
    fn follows_tokens_and_stops() {
        let mut pages = Pages::new("us-west-2", "DescribeNatGateways");
        assert_eq!(pages.token(), None);
        assert!(pages.advance(Some("a")).expect("first"));
        assert_eq!(pages.token().as_deref(), Some("a"));
        assert!(pages.advance(Some("b")).expect("second"));
        assert!(!pages.advance(None).expect("last"));
        assert!(!Pages::new("r", "Op")
            .advance(Some(""))
            .expect("empty token ends"));
    }

    #[test]
    fn a_repeated_token_is_an_error_not_a_loop() {
        let mut pages = Pages::new("us-west-2", "DescribeNatGateways");
        assert!(pages.advance(Some("a")).expect("first"));
        let err = pages.advance(Some("a")).expect_err("repeat");
        assert_eq!(err.region, "us-west-2");
        assert!(err.to_string().contains("already returned"));
    }
}

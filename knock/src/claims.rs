//! Which OIDC tokens may open a door: `allow_claims`, one rule per claim, every rule must match.
//! A rule's patterns take `*` and `?` wildcards (core's [`Pattern`], as for tag filters); a claim
//! that is an array matches when any element does; numbers and booleans match as written
//! (`true`, `42`); a missing, null or object claim never matches.

use allowlist_core::wildcard::Pattern;
use serde_json::{Map, Value};

/// One claim and the patterns of which any may match it.
#[derive(Debug, Clone)]
pub struct ClaimRule {
    pub claim: String,
    pub patterns: Vec<Pattern>,
}

impl ClaimRule {
    pub fn new(claim: &str, patterns: &[String]) -> Self {
        ClaimRule {
            claim: claim.to_owned(),
            patterns: patterns.iter().map(|p| Pattern::new(p)).collect(),
        }
    }

    /// Whether `claims` satisfy this rule.
    pub fn matches(&self, claims: &Map<String, Value>) -> bool {
        let scalar = |v: &Value| -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let text_matches = |text: &str| self.patterns.iter().any(|p| p.matches(text));
        match claims.get(&self.claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(scalar)
                .any(|text| text_matches(&text)),
            Some(v) => scalar(v).is_some_and(|text| text_matches(&text)),
            None => false,
        }
    }
}

/// Whether `claims` satisfy every rule; no rules never match (a door without `allow_claims` is
/// closed to every token).
pub fn all_match(rules: &[ClaimRule], claims: &Map<String, Value>) -> bool {
    !rules.is_empty() && rules.iter().all(|r| r.matches(claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn rule(claim: &str, patterns: &[&str]) -> ClaimRule {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        ClaimRule::new(claim, &patterns)
    }

    #[test]
    fn wildcards_arrays_and_scalars() {
        let c = claims(json!({
            "email": "ann@example.com",
            "groups": ["dev", "ops"],
            "repository": "octo/app",
            "ref": "refs/heads/main",
            "email_verified": true,
            "level": 3,
            "nested": {"a": "b"},
            "nothing": null,
        }));
        let cases = [
            (rule("email", &["*@example.com"]), true),
            (rule("email", &["*@example.org"]), false),
            (rule("groups", &["ops"]), true),
            (rule("groups", &["admin", "de?"]), true),
            (rule("groups", &["admin"]), false),
            (rule("ref", &["refs/heads/main"]), true),
            (rule("ref", &["refs/tags/*"]), false),
            (rule("email_verified", &["true"]), true),
            (rule("level", &["3"]), true),
            (rule("nested", &["*"]), false),
            (rule("nothing", &["*"]), false),
            (rule("missing", &["*"]), false),
        ];
        for (r, want) in cases {
            assert_eq!(r.matches(&c), want, "{} {:?}", r.claim, r.patterns);
        }
        let both = [
            rule("repository", &["octo/*"]),
            rule("ref", &["refs/heads/main"]),
        ];
        assert!(all_match(&both, &c));
        let one_fails = [
            rule("repository", &["octo/*"]),
            rule("ref", &["refs/tags/*"]),
        ];
        assert!(!all_match(&one_fails, &c));
        assert!(!all_match(&[], &c), "no rules: no token opens the door");
    }
}

//! URLs the user gives (the IP lookup service, a custom AWS endpoint): the one check that a value
//! is an absolute http(s) URL, and the one redaction used wherever a URL reaches a message or a
//! log line, so credentials in it (`user:pass@`, `?token=…`) are never shown.

/// What stands in for a hidden part of a URL.
const HIDDEN: &str = "REDACTED";

/// Checks that `value` is an absolute `http://` or `https://` URL with a host. The message names
/// the value redacted.
pub fn check_http(value: &str) -> Result<(), String> {
    let host = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .map(|rest| authority(rest).rsplit('@').next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(format!(
            "{:?} is not an absolute http:// or https:// URL (e.g. \"https://checkip.amazonaws.com\").",
            redacted(value)
        )),
    }
}

/// `value` with its userinfo and query string hidden: `http://user:pass@host/p?token=x` becomes
/// `http://REDACTED@host/p?REDACTED`. Text that is not a URL keeps only what precedes `@` or `?`
/// hidden the same way.
pub fn redacted(value: &str) -> String {
    let (scheme, rest) = match value.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, value),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{HIDDEN}@{host}"),
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((path, _)) => format!("{path}?{HIDDEN}"),
        None => path.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

/// The authority part of what follows `scheme://`.
fn authority(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_queries_are_hidden() {
        assert_eq!(
            redacted("http://user:pass@host:8080/ip?token=s3cr3t&x=1"),
            "http://REDACTED@host:8080/ip?REDACTED"
        );
        assert_eq!(
            redacted("https://checkip.amazonaws.com"),
            "https://checkip.amazonaws.com"
        );
        assert_eq!(redacted("https://h/p#frag"), "https://h/p#frag");
        assert_eq!(redacted("user:pw@host?k=v"), "REDACTED@host?REDACTED");
        assert_eq!(redacted("notaurl"), "notaurl");
    }

    #[test]
    fn only_absolute_http_urls_with_a_host_pass() {
        assert!(check_http("https://checkip.amazonaws.com").is_ok());
        assert!(check_http("http://127.0.0.1:5000").is_ok());
        assert!(check_http("http://u:p@127.0.0.1:5000/").is_ok());
        for bad in [
            "notaurl",
            "127.0.0.1:5000",
            "ftp://x",
            "http://",
            "https:///path",
        ] {
            assert!(check_http(bad).is_err(), "{bad}");
        }
        let err = check_http("ftp://u:secret@h").expect_err("ftp");
        assert!(!err.contains("secret"), "{err}");
    }
}

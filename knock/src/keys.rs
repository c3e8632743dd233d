//! The API keys file: `name = "sha256:<64 hex digits>"` per key, only hashes stored. A presented
//! key is hashed and compared with every stored hash in constant time (all of them, whatever
//! matched), so neither the time taken nor the order of the file tells anything about a guess.
//! The principal of a key is `key:<name>`.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Why the keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the API keys file {path}: {message}")]
    Read { path: String, message: String },
    #[error("the API keys file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("API key {name:?}: {message}")]
    Key { name: String, message: String },
}

/// The stored key hashes, by name.
#[derive(Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: even hashes stay out of logs.
        f.debug_list()
            .entries(self.hashes.iter().map(|(n, _)| n))
            .finish()
    }
}

impl ApiKeys {
    pub fn load(path: &Path) -> Result<ApiKeys, KeysError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeysError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        ApiKeys::parse(&text, &shown)
    }

    /// Checks the text of a keys file (`path` only names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<ApiKeys, KeysError> {
        let raw: BTreeMap<String, toml::Value> =
            toml::from_str(text).map_err(|e| KeysError::Parse {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
        let mut hashes = Vec::new();
        for (name, value) in raw {
            let bad = |message: &str| KeysError::Key {
                name: name.clone(),
                message: message.to_owned(),
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(bad("names are letters, digits, -, _ and ."));
            }
            let toml::Value::String(value) = value else {
                return Err(bad("the value must be a string \"sha256:<64 hex digits>\""));
            };
            let hex_digest = value.strip_prefix("sha256:").ok_or_else(|| {
                bad("the value must be \"sha256:<64 hex digits>\" (the SHA-256 of the key, never the key itself)")
            })?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digest.to_ascii_lowercase(), &mut digest)
                .map_err(|_| bad("after \"sha256:\" come exactly 64 hex digits"))?;
            hashes.push((name, digest));
        }
        Ok(ApiKeys { hashes })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.hashes.iter().any(|(n, _)| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The name of the key `presented`, if it is one of ours.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, stored) in &self.hashes {
            if constant_time_eq(&digest, stored) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The hash to write into the keys file for `key` (`sha256:<hex>`).
pub fn hash_line(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Equality of two digests whose time does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_by_hash_only() {
        let text = format!(
            "contractor-a = \"{}\"\nci = \"{}\"\n",
            hash_line("s3cret-a"),
            hash_line("s3cret-ci")
                .to_uppercase()
                .replace("SHA256:", "sha256:")
        );
        let keys = ApiKeys::parse(&text, "keys.toml").expect("valid");
        assert_eq!(keys.verify("s3cret-a"), Some("contractor-a"));
        assert_eq!(keys.verify("s3cret-ci"), Some("ci"));
        assert_eq!(keys.verify("s3cret-b"), None);
        assert_eq!(keys.verify(""), None);
        assert!(keys.contains("ci") && !keys.contains("s3cret-a"));
        let shown = format!("{keys:?}");
        assert!(!shown.contains(&hash_line("s3cret-a")[7..]), "{shown}");
    }

    #[test]
    fn bad_entries_name_the_key() {
        let cases = [
            (
                "a = \"s3cret\"",
                "API key \"a\": the value must be \"sha256:",
            ),
            ("a = \"sha256:abcd\"", "API key \"a\": after \"sha256:\""),
            ("a = 3", "API key \"a\": the value must be a string"),
            ("\"a b\" = \"sha256:00\"", "API key \"a b\": names are"),
            ("a = ", "is not valid"),
        ];
        for (text, want) in cases {
            let err = ApiKeys::parse(text, "keys.toml")
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}

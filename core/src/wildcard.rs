//! Tag value patterns with AWS filter wildcards: `*` matches any run of characters, `?` exactly
//! one, and a backslash makes the next character literal (`\*`, `\?`, `\\`).
//!
//! The same pattern is sent to EC2 as a `tag:<key>` filter and checked again on what comes back,
//! so a result is right even where a server ignores tag filters.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    One,
    Any,
}

impl Pattern {
    /// Compiles `source`. Every string is a valid pattern; a trailing lone backslash is literal.
    pub fn new(source: &str) -> Self {
        let mut tokens = Vec::new();
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => Token::Literal(chars.next().unwrap_or('\\')),
                c => Token::Literal(c),
            });
        }
        Pattern {
            source: source.to_owned(),
            tokens,
        }
    }

    /// The pattern as written, which is also the EC2 filter value.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // Classic greedy match with backtracking to the last `*`: linear in practice,
        // O(pattern × text) at worst, no recursion.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Token::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Literal(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn matches_like_aws_filters() {
        let cases = [
            ("*proxy*", "egress-proxy-1", true),
            ("*proxy*", "proxy", true),
            ("*proxy*", "prox", false),
            ("proxy", "proxy", true),
            ("proxy", "proxy2", false),
            ("nat-?", "nat-a", true),
            ("nat-?", "nat-ab", false),
            ("nat-?", "nat-", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            (r"100\%", "100%", true),
            (r"literal\*", "literal*", true),
            (r"literal\*", "literalX", false),
            (r"q\?", "q?", true),
            (r"q\?", "qa", false),
            ("é*", "été", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(text),
                want,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn keeps_the_source_for_the_server_side_filter() {
        assert_eq!(Pattern::new("*proxy*").as_str(), "*proxy*");
    }
}

//! Diagnostics as Terraform shows them: a severity, a summary that reads as a title, a detail that
//! says what happened and what to do, and optionally the path of the attribute to blame.

use super::proto::tfplugin6 as pb;

/// A step-by-step path to an attribute: `regions[1]`, `tags["Name"]`, `filter[0].name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttributePath(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Attr(String),
    Key(String),
    Index(i64),
}

impl AttributePath {
    /// The path of the whole object (no steps).
    pub fn root() -> Self {
        AttributePath(Vec::new())
    }

    /// The path of the top-level attribute `name`.
    pub fn of(name: &str) -> Self {
        Self::root().attr(name)
    }

    fn with(&self, step: Step) -> Self {
        let mut steps = self.0.clone();
        steps.push(step);
        AttributePath(steps)
    }

    /// This path followed by attribute (or nested block type) `name`.
    pub fn attr(&self, name: &str) -> Self {
        self.with(Step::Attr(name.to_owned()))
    }

    /// This path followed by the map key `key`.
    pub fn key(&self, key: &str) -> Self {
        self.with(Step::Key(key.to_owned()))
    }

    /// This path followed by list index `index`.
    pub fn index(&self, index: usize) -> Self {
        self.with(Step::Index(i64::try_from(index).unwrap_or(i64::MAX)))
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: self
                .0
                .iter()
                .map(|step| pb::attribute_path::Step {
                    selector: Some(match step {
                        Step::Attr(name) => Selector::AttributeName(name.clone()),
                        Step::Key(key) => Selector::ElementKeyString(key.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for AttributePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Attr(name) if i == 0 => write!(f, "{name}")?,
                Step::Attr(name) => write!(f, ".{name}")?,
                Step::Key(key) => write!(f, "[{key:?}]")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub path: Option<AttributePath>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            path: None,
        }
    }

    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(summary, detail)
        }
    }

    /// Points the diagnostic at an attribute.
    pub fn at(mut self, path: AttributePath) -> Self {
        self.path = Some(path);
        self
    }

    pub fn to_proto(&self) -> pb::Diagnostic {
        pb::Diagnostic {
            severity: match self.severity {
                Severity::Error => pb::diagnostic::Severity::Error,
                Severity::Warning => pb::diagnostic::Severity::Warning,
            } as i32,
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: self.path.as_ref().map(AttributePath::to_proto),
        }
    }
}

/// An ordered collection of diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// The attribute paths the diagnostics point at, in order (as `filter[0].name`).
    pub fn paths(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|d| d.path.as_ref().map(ToString::to_string))
            .collect()
    }

    /// Keeps the value of `result`, recording its error; `None` when it failed.
    pub fn take<T>(&mut self, result: Result<T, Diagnostic>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(d) => {
                self.push(d);
                None
            }
        }
    }

    pub fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_and_convert() {
        let path = AttributePath::root().attr("filter").index(0).attr("name");
        assert_eq!(path.to_string(), "filter[0].name");
        let tags = AttributePath::root().attr("tags").key("Name");
        assert_eq!(tags.to_string(), "tags[\"Name\"]");
        let proto = path.to_proto();
        assert_eq!(proto.steps.len(), 3);
        use pb::attribute_path::step::Selector;
        assert_eq!(proto.steps[1].selector, Some(Selector::ElementKeyInt(0)));
    }

    #[test]
    fn severity_maps_to_the_wire_enum() {
        let mut diags = Diagnostics::new();
        diags.push(Diagnostic::warning("W", "w"));
        assert!(!diags.has_errors());
        diags.push(Diagnostic::error("E", "e").at(AttributePath::root().attr("x")));
        assert!(diags.has_errors());
        let wire = diags.to_proto();
        assert_eq!(wire[0].severity, 2);
        assert_eq!(wire[1].severity, 1);
        assert!(wire[1].attribute.is_some());
    }
}

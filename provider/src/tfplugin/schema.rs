//! Schemas: attribute types, whether each attribute is required, optional or computed, and the
//! description users read in the docs. A schema with an undescribed attribute is refused.

use super::diagnostics::AttributePath;
use super::proto::tfplugin6 as pb;
use super::value::Value;
use std::collections::BTreeMap;

/// An attribute's type, serialised as Terraform's type JSON (`"string"`, `["list","string"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
}

impl Type {
    pub fn list(of: Type) -> Type {
        Type::List(Box::new(of))
    }

    pub fn set(of: Type) -> Type {
        Type::Set(Box::new(of))
    }

    pub fn map(of: Type) -> Type {
        Type::Map(Box::new(of))
    }

    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Type)>) -> Type {
        Type::Object(attrs.into_iter().map(|(k, t)| (k.into(), t)).collect())
    }

    /// Terraform's JSON form of the type.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Type::String => json!("string"),
            Type::Number => json!("number"),
            Type::Bool => json!("bool"),
            Type::List(t) => json!(["list", t.to_json()]),
            Type::Set(t) => json!(["set", t.to_json()]),
            Type::Map(t) => json!(["map", t.to_json()]),
            Type::Object(attrs) => {
                let attrs: serde_json::Map<_, _> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", attrs])
            }
        }
    }

    /// The type as Terraform writes it: `list(string)`, `map(number)`, `object`.
    fn name(&self) -> String {
        match self {
            Type::String => "string".into(),
            Type::Number => "number".into(),
            Type::Bool => "bool".into(),
            Type::List(t) => format!("list({})", t.name()),
            Type::Set(t) => format!("set({})", t.name()),
            Type::Map(t) => format!("map({})", t.name()),
            Type::Object(_) => "object".into(),
        }
    }

    /// Checks that `value` at `path` has this type. Null and unknown fit every type; numbers
    /// may come as decimal strings (what cty sends for numbers no msgpack number holds).
    /// Recursion follows the type, so a deeply nested value costs no deep stack.
    fn check(&self, value: &Value, path: &AttributePath) -> Result<(), ValueMismatch> {
        match (self, value) {
            (_, Value::Null | Value::Unknown(_))
            | (Type::String, Value::String(_))
            | (Type::Number, Value::Number(_))
            | (Type::Bool, Value::Bool(_)) => Ok(()),
            (Type::Number, Value::String(s)) if s.parse::<f64>().is_ok() => Ok(()),
            (Type::List(t) | Type::Set(t), Value::List(items)) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| t.check(item, &path.index(i))),
            (Type::Map(t), Value::Map(map)) => {
                map.iter().try_for_each(|(k, v)| t.check(v, &path.key(k)))
            }
            (Type::Object(attrs), Value::Map(map)) => {
                if let Some(extra) = map.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(ValueMismatch::new(path.attr(extra), "is not in the schema"));
                }
                attrs.iter().try_for_each(|(name, t)| match map.get(name) {
                    Some(v) => t.check(v, &path.attr(name)),
                    None => Err(ValueMismatch::new(path.attr(name), "is missing")),
                })
            }
            (t, v) => Err(ValueMismatch::new(
                path.clone(),
                format!("is {} where {} is expected", kind(v), t.name()),
            )),
        }
    }
}

/// What kind of value this is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Unknown(_) => "an unknown value",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Map(_) => "a map or object",
    }
}

/// Who sets an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The configuration must set it.
    Required,
    /// The configuration may set it; null otherwise.
    Optional,
    /// Only the provider sets it.
    Computed,
    /// The configuration may set it; otherwise the provider does.
    OptionalComputed,
}

impl Mode {
    pub fn is_computed(self) -> bool {
        matches!(self, Mode::Computed | Mode::OptionalComputed)
    }
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub mode: Mode,
    pub description: &'static str,
    pub sensitive: bool,
    /// A change of this attribute replaces the resource instead of updating it in place.
    pub force_new: bool,
    /// For computed attributes: keeps its prior value when the resource is updated in place
    /// (an id that does not change), instead of becoming unknown.
    pub stable: bool,
}

impl Attribute {
    pub fn new(name: &'static str, ty: Type, mode: Mode, description: &'static str) -> Self {
        Attribute {
            name,
            ty,
            mode,
            description,
            sensitive: false,
            force_new: false,
            stable: false,
        }
    }

    /// Marks a computed attribute as keeping its prior value on in-place updates.
    pub fn stable(mut self) -> Self {
        self.stable = true;
        self
    }

    /// Marks the attribute as forcing replacement when it changes.
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }

    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// How a nested block repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    List,
    Set,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub type_name: &'static str,
    pub nesting: Nesting,
    pub block: Block,
    pub description: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub description: &'static str,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
}

impl Block {
    pub fn new(description: &'static str) -> Self {
        Block {
            description,
            ..Block::default()
        }
    }

    pub fn attribute(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    pub fn block(mut self, type_name: &'static str, nesting: Nesting, block: Block) -> Self {
        let description = block.description;
        self.blocks.push(NestedBlock {
            type_name,
            nesting,
            block,
            description,
        });
        self
    }

    pub fn find(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Checks what Terraform would otherwise reject (or crash on), plus our own rule that every
    /// attribute and block is described.
    pub fn check(&self, at: &str) -> Result<(), SchemaError> {
        if self.description.trim().is_empty() {
            return Err(SchemaError(format!("{at}: block has no description")));
        }
        let mut names = std::collections::HashSet::new();
        let all_names = self
            .attributes
            .iter()
            .map(|a| a.name)
            .chain(self.blocks.iter().map(|b| b.type_name));
        for name in all_names {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(SchemaError(format!("{at}: {name:?} is not a valid name")));
            }
            if !names.insert(name) {
                return Err(SchemaError(format!("{at}: {name:?} is defined twice")));
            }
        }
        for attr in &self.attributes {
            if attr.description.trim().is_empty() {
                return Err(SchemaError(format!(
                    "{at}.{}: attribute has no description",
                    attr.name
                )));
            }
            if attr.force_new && attr.mode == Mode::Computed {
                return Err(SchemaError(format!(
                    "{at}.{}: a computed-only attribute cannot force replacement",
                    attr.name
                )));
            }
        }
        for nested in &self.blocks {
            nested.block.check(&format!("{at}.{}", nested.type_name))?;
        }
        Ok(())
    }

    /// Makes `value` carry exactly this block's attributes and nested blocks: missing attributes
    /// become null, missing nested blocks an empty list. Attributes the schema does not have are
    /// an error (Terraform would reject the whole object).
    pub fn conform(&self, value: &mut Value) -> Result<(), SchemaError> {
        let Some(map) = value.as_map_mut() else {
            return match value {
                Value::Null | Value::Unknown(_) => Ok(()),
                _ => Err(SchemaError("expected an object".into())),
            };
        };
        if let Some(extra) = map.keys().find(|k| {
            self.find(k).is_none() && !self.blocks.iter().any(|b| b.type_name == k.as_str())
        }) {
            return Err(SchemaError(format!("{extra:?} is not in the schema")));
        }
        for attr in &self.attributes {
            map.entry(attr.name.to_owned()).or_insert(Value::Null);
        }
        for nested in &self.blocks {
            let entry = map
                .entry(nested.type_name.to_owned())
                .or_insert_with(|| Value::List(Vec::new()));
            if entry.is_null() {
                *entry = Value::List(Vec::new());
            }
            if let Value::List(items) = entry {
                for item in items {
                    nested.block.conform(item)?;
                }
            }
        }
        Ok(())
    }

    /// Checks that `value` is what Terraform always sends for this block: an object with exactly
    /// its attributes and nested blocks, each of its type (null and unknown fit any type; a
    /// nested block is a list of objects, or null, or unknown).
    pub fn check_value(&self, value: &Value) -> Result<(), ValueMismatch> {
        self.check_value_at(value, &AttributePath::root())
    }

    fn check_value_at(&self, value: &Value, path: &AttributePath) -> Result<(), ValueMismatch> {
        let Value::Map(map) = value else {
            return Err(ValueMismatch::new(
                path.clone(),
                format!("is {} where an object is expected", kind(value)),
            ));
        };
        if let Some(extra) = map.keys().find(|k| {
            self.find(k).is_none() && !self.blocks.iter().any(|b| b.type_name == k.as_str())
        }) {
            return Err(ValueMismatch::new(path.attr(extra), "is not in the schema"));
        }
        for attr in &self.attributes {
            let at = path.attr(attr.name);
            match map.get(attr.name) {
                Some(v) => attr.ty.check(v, &at)?,
                None => return Err(ValueMismatch::new(at, "is missing")),
            }
        }
        for nested in &self.blocks {
            let at = path.attr(nested.type_name);
            match map.get(nested.type_name) {
                Some(Value::Null | Value::Unknown(_)) => {}
                Some(Value::List(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_unknown() {
                            nested.block.check_value_at(item, &at.index(i))?;
                        }
                    }
                }
                Some(v) => {
                    return Err(ValueMismatch::new(
                        at,
                        format!("is {} where a list of blocks is expected", kind(v)),
                    ))
                }
                None => return Err(ValueMismatch::new(at, "is missing")),
            }
        }
        Ok(())
    }

    /// Removes attributes the schema no longer has (from a state written by an older version).
    pub fn prune(&self, value: &mut Value) {
        let Some(map) = value.as_map_mut() else {
            return;
        };
        map.retain(|k, _| {
            self.find(k).is_some() || self.blocks.iter().any(|b| b.type_name == k.as_str())
        });
        for nested in &self.blocks {
            if let Some(Value::List(items)) = map.get_mut(nested.type_name) {
                for item in items {
                    nested.block.prune(item);
                }
            }
        }
    }

    pub fn to_proto(&self) -> pb::schema::Block {
        pb::schema::Block {
            version: 0,
            attributes: self
                .attributes
                .iter()
                .map(|a| pb::schema::Attribute {
                    name: a.name.to_owned(),
                    r#type: a.ty.to_json().to_string().into_bytes(),
                    description: a.description.to_owned(),
                    required: a.mode == Mode::Required,
                    optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
                    computed: a.mode.is_computed(),
                    sensitive: a.sensitive,
                    description_kind: pb::StringKind::Markdown as i32,
                    deprecated: false,
                })
                .collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.type_name.to_owned(),
                    block: Some(b.block.to_proto()),
                    nesting: match b.nesting {
                        Nesting::List => pb::schema::nested_block::NestingMode::List,
                        Nesting::Set => pb::schema::nested_block::NestingMode::Set,
                    } as i32,
                    min_items: 0,
                    max_items: 0,
                })
                .collect(),
            description: self.description.to_owned(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }
}

/// A schema: a version and the top-level block.
#[derive(Debug, Clone)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(block: Block) -> Self {
        Schema { version: 0, block }
    }

    pub fn to_proto(&self) -> pb::Schema {
        pb::Schema {
            version: self.version,
            block: Some(self.block.to_proto()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema: {0}")]
pub struct SchemaError(pub String);

/// Where and how a value does not fit its schema: "tags is missing", "ports[0] is a string where
/// number is expected", "the value is null where an object is expected".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {problem}", if path.steps().is_empty() { "the value".to_owned() } else { path.to_string() })]
pub struct ValueMismatch {
    pub path: AttributePath,
    pub problem: String,
}

impl ValueMismatch {
    fn new(path: AttributePath, problem: impl Into<String>) -> Self {
        ValueMismatch {
            path,
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Block {
        Block::new("A thing.")
            .attribute(Attribute::new(
                "name",
                Type::String,
                Mode::Required,
                "The name.",
            ))
            .attribute(Attribute::new(
                "id",
                Type::String,
                Mode::Computed,
                "The id.",
            ))
            .block(
                "filter",
                Nesting::List,
                Block::new("A filter.").attribute(Attribute::new(
                    "values",
                    Type::list(Type::String),
                    Mode::Required,
                    "Values.",
                )),
            )
    }

    #[test]
    fn type_json_matches_terraform() {
        let t = Type::list(Type::object([("id", Type::String), ("n", Type::Number)]));
        assert_eq!(
            t.to_json().to_string(),
            r#"["list",["object",{"id":"string","n":"number"}]]"#
        );
        assert_eq!(
            Type::map(Type::Bool).to_json().to_string(),
            r#"["map","bool"]"#
        );
    }

    #[test]
    fn refuses_an_attribute_without_description() {
        assert_eq!(sample().check("x"), Ok(()));
        let bad = sample().attribute(Attribute::new("quiet", Type::String, Mode::Optional, " "));
        let err = bad.check("thing").expect_err("undescribed");
        assert!(err.0.contains("thing.quiet"), "{err}");
    }

    #[test]
    fn refuses_bad_and_duplicate_names() {
        let bad = sample().attribute(Attribute::new(
            "Bad-Name",
            Type::String,
            Mode::Optional,
            "d",
        ));
        assert!(bad.check("t").is_err());
        let dup = sample().attribute(Attribute::new("name", Type::String, Mode::Optional, "d"));
        assert!(dup.check("t").is_err());
        let nested = Block::new("d").block(
            "b",
            Nesting::List,
            Block::new("d").attribute(Attribute::new("x", Type::String, Mode::Optional, "")),
        );
        assert!(nested.check("t").unwrap_err().0.contains("t.b.x"));
    }

    #[test]
    fn conform_fills_missing_and_refuses_extra() {
        let mut v = Value::object([("name", Value::string("a"))]);
        sample().conform(&mut v).expect("conforms");
        assert_eq!(v.attr("id"), &Value::Null);
        assert_eq!(v.attr("filter"), &Value::List(vec![]));
        let mut extra = Value::object([("nope", Value::Null)]);
        assert!(sample().conform(&mut extra).is_err());
    }
}

//! Terraform values on the wire: msgpack `DynamicValue`s (with null and unknown) and the JSON that
//! `UpgradeResourceState` carries, decoded into one dynamic [`Value`] and read into typed fields
//! through [`Tri`], the three states every attribute can be in.

use super::diagnostics::{AttributePath, Diagnostic};
use std::collections::BTreeMap;
use std::fmt;

/// msgpack extension payload of the classic "unknown" value (`d4 00 00`).
const UNKNOWN_EXT: (i8, [u8; 1]) = (0, [0]);

/// How deep the msgpack decoder may recurse (each nested array or map costs about two): ample
/// for any schema (ours nest four deep), and shallow enough for a 2 MiB tokio worker stack even
/// in a debug build, where rmpv's default of 1024 overflowed it and aborted the provider.
const MAX_DEPTH: usize = 128;

/// A value as Terraform sends it. Objects and maps are both [`Value::Map`]; lists, sets and tuples
/// are [`Value::List`]; the schema says which is which.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Not known until apply. The raw extension is kept so refinements (ext 12) are echoed intact.
    Unknown(Unknown),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

/// The raw msgpack extension an unknown value arrived as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    ext_type: i8,
    payload: Vec<u8>,
}

impl Default for Unknown {
    fn default() -> Self {
        Unknown {
            ext_type: UNKNOWN_EXT.0,
            payload: UNKNOWN_EXT.1.to_vec(),
        }
    }
}

/// A number: integers exactly, other values as floats or, past f64, as decimal text.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(String),
}

impl Number {
    /// The number as an i64 when it is a whole number that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::UInt(u) => i64::try_from(*u).ok(),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Decimal(s) => s.parse().ok(),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::UInt(u) => write!(f, "{u}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Decimal(s) => f.write_str(s),
        }
    }
}

/// Why bytes from Terraform could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid msgpack: {0}")]
    Msgpack(String),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("map keys must be strings")]
    NonStringKey,
    #[error("unsupported msgpack value: {0}")]
    Unsupported(&'static str),
}

impl Value {
    /// An unknown value in the classic encoding.
    pub fn unknown() -> Self {
        Value::Unknown(Unknown::default())
    }

    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    /// A list of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Self {
        Value::List(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// An object from `(attribute, value)` pairs.
    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Map(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::List(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(map) => map.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    /// The attribute `name` of an object; null when absent or when this is not an object.
    pub fn attr(&self, name: &str) -> &Value {
        match self {
            Value::Map(map) => map.get(name).unwrap_or(&Value::Null),
            _ => &Value::Null,
        }
    }

    /// Sets the attribute `name` of an object (nothing happens when this is not an object).
    pub fn set(&mut self, name: &str, value: Value) {
        if let Value::Map(map) = self {
            map.insert(name.to_owned(), value);
        }
    }

    /// Mutable access to an object's attribute map.
    pub fn as_map_mut(&mut self) -> Option<&mut BTreeMap<String, Value>> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// Reads the attribute `name` of this object as `T`, with `path` (the object's own path) used
    /// for the diagnostic when it has the wrong type.
    pub fn get<T: FromValue>(
        &self,
        path: &AttributePath,
        name: &str,
    ) -> Result<Tri<T>, Diagnostic> {
        T::read(self.attr(name), &path.attr(name))
    }

    /// Decodes a msgpack `DynamicValue`. Empty bytes are null, as in Terraform.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        let mut reader = bytes;
        let raw = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
            .map_err(|e| DecodeError::Msgpack(e.to_string()))?;
        if !reader.is_empty() {
            return Err(DecodeError::Msgpack(format!(
                "{} trailing bytes",
                reader.len()
            )));
        }
        Self::from_rmpv(raw)
    }

    fn from_rmpv(raw: rmpv::Value) -> Result<Self, DecodeError> {
        Ok(match raw {
            rmpv::Value::Nil => Value::Null,
            rmpv::Value::Boolean(b) => Value::Bool(b),
            rmpv::Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
                (Some(v), _) => Value::Number(Number::Int(v)),
                (None, Some(v)) => Value::Number(Number::UInt(v)),
                (None, None) => return Err(DecodeError::Unsupported("integer out of range")),
            },
            rmpv::Value::F32(f) => Value::Number(Number::Float(f64::from(f))),
            rmpv::Value::F64(f) => Value::Number(Number::Float(f)),
            rmpv::Value::String(s) => match s.into_str() {
                Some(s) => Value::String(s),
                None => return Err(DecodeError::Unsupported("string that is not UTF-8")),
            },
            rmpv::Value::Binary(_) => return Err(DecodeError::Unsupported("binary")),
            rmpv::Value::Array(items) => Value::List(
                items
                    .into_iter()
                    .map(Self::from_rmpv)
                    .collect::<Result<_, _>>()?,
            ),
            rmpv::Value::Map(entries) => {
                let mut map = BTreeMap::new();
                for (k, v) in entries {
                    let rmpv::Value::String(key) = k else {
                        return Err(DecodeError::NonStringKey);
                    };
                    let key = key.into_str().ok_or(DecodeError::NonStringKey)?;
                    map.insert(key, Self::from_rmpv(v)?);
                }
                Value::Map(map)
            }
            // Any extension type is an unknown value (type 12 = refined unknown).
            rmpv::Value::Ext(ext_type, payload) => Value::Unknown(Unknown { ext_type, payload }),
        })
    }

    /// Encodes as msgpack for a `DynamicValue`.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut out, &self.to_rmpv());
        out
    }

    fn to_rmpv(&self) -> rmpv::Value {
        match self {
            Value::Null => rmpv::Value::Nil,
            Value::Unknown(u) => rmpv::Value::Ext(u.ext_type, u.payload.clone()),
            Value::Bool(b) => rmpv::Value::Boolean(*b),
            Value::Number(Number::Int(i)) => rmpv::Value::from(*i),
            Value::Number(Number::UInt(u)) => rmpv::Value::from(*u),
            Value::Number(Number::Float(f)) => rmpv::Value::F64(*f),
            Value::Number(Number::Decimal(s)) => rmpv::Value::from(s.as_str()),
            Value::String(s) => rmpv::Value::from(s.as_str()),
            Value::List(items) => rmpv::Value::Array(items.iter().map(Value::to_rmpv).collect()),
            Value::Map(map) => rmpv::Value::Map(
                map.iter()
                    .map(|(k, v)| (rmpv::Value::from(k.as_str()), v.to_rmpv()))
                    .collect(),
            ),
        }
    }

    /// Decodes the JSON form of a stored state (`UpgradeResourceState`). JSON has no unknowns.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let json: serde_json::Value = serde_json::from_slice(bytes)?;
        Ok(Self::from_serde(json))
    }

    fn from_serde(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                Value::Number(match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), _, _) => Number::Int(i),
                    (None, Some(u), _) => Number::UInt(u),
                    (None, None, Some(f)) => Number::Float(f),
                    _ => Number::Decimal(n.to_string()),
                })
            }
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::List(items.into_iter().map(Self::from_serde).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| (k, Self::from_serde(v)))
                    .collect(),
            ),
        }
    }
}

/// One attribute's value in one of Terraform's three states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tri<T> {
    Null,
    Unknown,
    Known(T),
}

impl<T> Tri<T> {
    /// The known value, if any.
    pub fn known(self) -> Option<T> {
        match self {
            Tri::Known(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_known(&self) -> Option<&T> {
        match self {
            Tri::Known(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Tri::Unknown)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Tri::Null)
    }
}

/// Reading a typed value out of a [`Value`], with a diagnostic at `path` when the type is wrong
/// (which only a malformed request can cause: Terraform converts config to the schema's types).
pub trait FromValue: Sized {
    /// The type's name in Terraform's words, for messages.
    const EXPECTED: &'static str;

    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic>;

    fn read(value: &Value, path: &AttributePath) -> Result<Tri<Self>, Diagnostic> {
        match value {
            Value::Null => Ok(Tri::Null),
            Value::Unknown(_) => Ok(Tri::Unknown),
            v => Self::from_known(v, path).map(Tri::Known),
        }
    }
}

fn wrong_type(path: &AttributePath, expected: &str, got: &Value) -> Diagnostic {
    let got = match got {
        Value::Null => "null",
        Value::Unknown(_) => "an unknown value",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Map(_) => "a map or object",
    };
    Diagnostic::error(
        "Invalid Value Type",
        format!("Expected {expected} but Terraform sent {got}. This is a bug in Terraform or in the request."),
    )
    .at(path.clone())
}

impl FromValue for String {
    const EXPECTED: &'static str = "a string";
    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic> {
        match value {
            Value::String(s) => Ok(s.clone()),
            v => Err(wrong_type(path, Self::EXPECTED, v)),
        }
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "a bool";
    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic> {
        match value {
            Value::Bool(b) => Ok(*b),
            v => Err(wrong_type(path, Self::EXPECTED, v)),
        }
    }
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "a whole number";
    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic> {
        match value {
            // Terraform sends numbers that fit no msgpack number as decimal strings.
            Value::String(s) => s
                .parse()
                .map_err(|_| wrong_type(path, Self::EXPECTED, value)),
            Value::Number(n) => n.as_i64().ok_or_else(|| {
                Diagnostic::error(
                    "Invalid Number",
                    format!(
                        "Expected a whole number between {} and {}, got {n}.",
                        i64::MIN,
                        i64::MAX
                    ),
                )
                .at(path.clone())
            }),
            v => Err(wrong_type(path, Self::EXPECTED, v)),
        }
    }
}

/// Lists and sets. An unknown element makes the whole value unknown for typed reads.
impl<T: FromValue> FromValue for Vec<Tri<T>> {
    const EXPECTED: &'static str = "a list";
    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic> {
        match value {
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| T::read(item, &path.index(i)))
                .collect(),
            v => Err(wrong_type(path, Self::EXPECTED, v)),
        }
    }
}

impl<T: FromValue> FromValue for BTreeMap<String, Tri<T>> {
    const EXPECTED: &'static str = "a map";
    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic> {
        match value {
            Value::Map(map) => map
                .iter()
                .map(|(k, v)| T::read(v, &path.key(k)).map(|t| (k.clone(), t)))
                .collect(),
            v => Err(wrong_type(path, Self::EXPECTED, v)),
        }
    }
}

/// Writing a typed value as a [`Value`]: the inverse of [`FromValue`].
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Number(Number::Int(*self))
    }
}

impl<T: ToValue> ToValue for Tri<T> {
    fn to_value(&self) -> Value {
        match self {
            Tri::Null => Value::Null,
            Tri::Unknown => Value::unknown(),
            Tri::Known(v) => v.to_value(),
        }
    }
}

impl<T: ToValue> ToValue for Vec<T> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(ToValue::to_value).collect())
    }
}

impl<T: ToValue> ToValue for BTreeMap<String, T> {
    fn to_value(&self) -> Value {
        Value::Map(
            self.iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn unknown_encodes_as_classic_ext() {
        assert_eq!(hex(&Value::unknown().to_msgpack()), "d40000");
    }

    #[test]
    fn refined_unknown_round_trips_byte_for_byte() {
        // What Terraform 1.11 sent for "pre-${other.id}": ext8 type 12 {1: false, 2: "pre-"}.
        let bytes = [
            0xc7, 0x09, 0x0c, 0x82, 0x01, 0xc2, 0x02, 0xa4, b'p', b'r', b'e', b'-',
        ];
        let value = Value::from_msgpack(&bytes).expect("decodes");
        assert!(value.is_unknown());
        assert_eq!(value.to_msgpack(), bytes);
    }

    #[test]
    fn object_round_trip_keeps_nulls_and_nesting() {
        // {"id": nil, "name": "one", "tags": {"a": "b"}} as Terraform sends it.
        let bytes = [
            0x83, 0xa2, b'i', b'd', 0xc0, 0xa4, b'n', b'a', b'm', b'e', 0xa3, b'o', b'n', b'e',
            0xa4, b't', b'a', b'g', b's', 0x81, 0xa1, b'a', 0xa1, b'b',
        ];
        let value = Value::from_msgpack(&bytes).expect("decodes");
        assert_eq!(value.attr("id"), &Value::Null);
        assert_eq!(value.attr("name"), &Value::string("one"));
        assert_eq!(value.attr("tags").attr("a"), &Value::string("b"));
        assert_eq!(value.to_msgpack(), bytes);
    }

    #[test]
    fn empty_dynamic_value_is_null() {
        assert_eq!(Value::from_msgpack(&[]).expect("null"), Value::Null);
    }

    #[test]
    fn malformed_msgpack_is_an_error_not_a_panic() {
        // (rmpv reads the reserved marker 0xc1 as nil, which is harmless: typed reads then see null.)
        for bytes in [
            &[0x92, 0x01][..],
            &[0x81, 0x01, 0x02],
            &[0xa3, 0xff, 0xfe, 0xfd],
            &[0xc0, 0xc0],
            &[0xdc, 0xff],
        ] {
            assert!(Value::from_msgpack(bytes).is_err(), "{}", hex(bytes));
        }
    }

    #[test]
    fn numbers_decode_in_every_width() {
        assert_eq!(
            Value::from_msgpack(&[0x2a]).expect("fixint"),
            Value::Number(Number::Int(42))
        );
        let big = [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Value::from_msgpack(&big).expect("u64"),
            Value::Number(Number::UInt(u64::MAX))
        );
        let float = [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Value::from_msgpack(&float).expect("f64"),
            Value::Number(Number::Float(1.5))
        );
        let text = Value::from_msgpack(&[0xa2, b'1', b'0']).expect("decimal string");
        assert_eq!(text, Value::string("10"));
    }

    #[test]
    fn json_state_decodes() {
        let value =
            Value::from_json(br#"{"id":"x","n":3,"f":1.5,"l":["a"],"m":null}"#).expect("json");
        assert_eq!(value.attr("id"), &Value::string("x"));
        assert_eq!(value.attr("n"), &Value::Number(Number::Int(3)));
        assert_eq!(value.attr("l"), &Value::strings(["a"]));
        assert!(value.attr("m").is_null());
        assert!(Value::from_json(b"{").is_err());
    }

    #[test]
    fn typed_reads_have_three_states_and_point_at_the_attribute() {
        let obj = Value::object([
            ("s", Value::string("x")),
            ("n", Value::Null),
            ("u", Value::unknown()),
            (
                "l",
                Value::List(vec![Value::string("a"), Value::Bool(true)]),
            ),
        ]);
        let root = AttributePath::root();
        assert_eq!(obj.get::<String>(&root, "s"), Ok(Tri::Known("x".into())));
        assert_eq!(obj.get::<String>(&root, "n"), Ok(Tri::Null));
        assert_eq!(obj.get::<String>(&root, "u"), Ok(Tri::Unknown));
        assert_eq!(obj.get::<String>(&root, "missing"), Ok(Tri::Null));
        let err = obj
            .get::<Vec<Tri<String>>>(&root, "l")
            .expect_err("bool in a string list");
        assert_eq!(err.path, Some(root.attr("l").index(1)));
        assert!(obj.get::<i64>(&root, "s").is_err());
    }

    #[test]
    fn typed_values_write_back_as_they_were_read() {
        let list = Value::List(vec![Value::string("a"), Value::unknown(), Value::Null]);
        let read = Vec::<Tri<String>>::read(&list, &AttributePath::root()).expect("list");
        assert_eq!(read.to_value(), list);
        let map = Value::object([("n", Value::Number(Number::Int(7)))]);
        let read = BTreeMap::<String, Tri<i64>>::read(&map, &AttributePath::root()).expect("map");
        assert_eq!(read.to_value(), map);
        assert_eq!(Tri::<bool>::Unknown.to_value(), Value::unknown());
    }
}

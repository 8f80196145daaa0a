//! Strict JSON request bodies (issue 9 item 1): exactly one JSON object, nothing after it, no
//! duplicate keys, and every struct read from an object (serde would otherwise fill a struct from
//! an array, positionally). Errors name the field as a dotted path (`quiet_hours.timezone`,
//! `messages[3].ref`) and never quote the offending value: it may be a phone number.
//!
//! Two steps: [`parse_object`] reads the bytes into a `serde_json::Value` (rejecting duplicates and
//! trailing data), then [`from_value`] deserializes the target type through [`Strict`], a
//! `Deserializer` over the value that refuses anything but an object where a struct is expected.

use serde::de::{
    self, value::BorrowedStrDeserializer, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, Expected,
    IntoDeserializer, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Why a body was refused: an docs/api.md error code, a message that quotes no value, and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// `invalid_json`, or `missing_field` for a required field that is absent.
    pub code: &'static str,
    /// Human-readable; names fields, never values.
    pub message: String,
    /// The dotted path at fault, when one is.
    pub field: Option<String>,
}

impl JsonError {
    fn invalid(message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            code: "invalid_json",
            message: message.into(),
            field,
        }
    }
}

/// Parse `bytes` as a single JSON object without duplicate keys.
///
/// # Errors
/// `invalid_json`: not JSON, data after the object, a duplicate key (named), or not an object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Checked {
        path: String::new(),
        duplicate: &mut duplicate,
    }
    .deserialize(&mut de);
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            if let Some(path) = duplicate {
                return Err(JsonError::invalid(format!("duplicate key `{path}`"), Some(path)));
            }
            let why = if e.is_eof() {
                "it ends too early"
            } else {
                "syntax error"
            };
            return Err(JsonError::invalid(
                format!(
                    "request body is not valid JSON ({why} at line {}, column {})",
                    e.line(),
                    e.column()
                ),
                None,
            ));
        }
    };
    if de.end().is_err() {
        return Err(JsonError::invalid("request body has data after the JSON object", None));
    }
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::invalid("request body must be a JSON object", None)),
    }
}

/// Deserialize `T` from `value`, structs only from objects; errors name the path.
///
/// # Errors
/// `invalid_json` naming the field of a wrong type or shape; `missing_field` naming a required
/// field that is absent.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, JsonError> {
    serde_path_to_error::deserialize(Strict(value)).map_err(|e| {
        let path = e.path().to_string();
        let at = (path != ".").then_some(path);
        describe(at, e.into_inner())
    })
}

/// Check only that every struct of `T` in `value` is given as an object (other faults are left
/// to whoever deserializes `value` later); `at` is the path of `value` in the body.
///
/// # Errors
/// `invalid_json` naming the first struct given as something else.
pub fn check_shape<T: DeserializeOwned>(value: &Value, at: &str) -> Result<(), JsonError> {
    match serde_path_to_error::deserialize::<_, T>(Strict(value)) {
        Err(e) if matches!(e.inner(), FieldError::NotAnObject(_)) => {
            let path = e.path().to_string();
            let full = if path == "." {
                at.to_owned()
            } else if path.starts_with('[') {
                format!("{at}{path}")
            } else {
                format!("{at}.{path}")
            };
            Err(describe(Some(full), e.into_inner()))
        }
        _ => Ok(()),
    }
}

/// [`parse_object`] then [`from_value`]; the parsed value is returned too.
///
/// # Errors
/// As both.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, Value), JsonError> {
    let value = Value::Object(parse_object(bytes)?);
    let typed = from_value(&value)?;
    Ok((typed, value))
}

fn describe(at: Option<String>, e: FieldError) -> JsonError {
    let name = at.clone().unwrap_or_else(|| "request body".to_owned());
    match e {
        FieldError::NotAnObject(found) => {
            JsonError::invalid(format!("`{name}` must be a JSON object, not {found}"), at)
        }
        FieldError::WrongType { expected, found } => {
            JsonError::invalid(format!("`{name}` must be {expected}, not {found}"), at)
        }
        FieldError::BadValue { expected } => {
            JsonError::invalid(format!("`{name}` has an invalid value (expected {expected})"), at)
        }
        FieldError::Missing(field) => {
            let path = match at {
                Some(p) => format!("{p}.{field}"),
                None => field.to_owned(),
            };
            JsonError {
                code: "missing_field",
                message: format!("`{path}` is required"),
                field: Some(path),
            }
        }
        FieldError::Other => JsonError::invalid(format!("`{name}` is not valid"), at),
    }
}

/// Builds a `Value`, remembering the path of the first duplicate key (then failing).
struct Checked<'a> {
    path: String,
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Checked<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Checked {
            path: format!("{}[{}]", self.path, items.len()),
            duplicate: &mut *self.duplicate,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if out.contains_key(&key) {
                *self.duplicate = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(Checked {
                path,
                duplicate: &mut *self.duplicate,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// What went wrong at one path; carries no value.
#[derive(Debug)]
enum FieldError {
    NotAnObject(&'static str),
    WrongType { expected: String, found: &'static str },
    BadValue { expected: String },
    Missing(&'static str),
    Other,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject(found) => write!(f, "expected an object, found {found}"),
            Self::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            Self::BadValue { expected } => write!(f, "invalid value, expected {expected}"),
            Self::Missing(field) => write!(f, "missing field {field}"),
            Self::Other => f.write_str("invalid"),
        }
    }
}

impl std::error::Error for FieldError {}

/// serde's wording, in JSON's terms.
fn json_words(expected: &dyn Expected) -> String {
    let text = expected.to_string();
    if text.starts_with("struct ") || text == "a map" {
        "a JSON object".to_owned()
    } else if text == "a sequence" || text.starts_with("tuple") {
        "an array".to_owned()
    } else {
        text
    }
}

fn kind_of(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) | Unexpected::Bytes(_) => "a string",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::Seq => "an array",
        Unexpected::Map => "an object",
        _ => "a value of another kind",
    }
}

fn kind_of_value(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        // Custom texts may quote the input; say only that the field is not valid.
        Self::Other
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::WrongType {
            expected: json_words(exp),
            found: kind_of(&unexp),
        }
    }
    fn invalid_value(_unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::BadValue {
            expected: json_words(exp),
        }
    }
    fn invalid_length(_len: usize, exp: &dyn Expected) -> Self {
        Self::BadValue {
            expected: json_words(exp),
        }
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Self::BadValue {
            expected: format!("one of {}", expected.join(", ")),
        }
    }
    fn missing_field(field: &'static str) -> Self {
        Self::Missing(field)
    }
}

/// A `Deserializer` over a parsed value in which a struct must be an object.
struct Strict<'a>(&'a Value);

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, Some(f)) => visitor.visit_f64(f),
                (None, None, None) => Err(FieldError::Other),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = Seq(items.iter());
                let out = visitor.visit_seq(&mut seq)?;
                if seq.0.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(items.len(), &"fewer elements"))
                }
            }
            Value::Object(map) => {
                let mut entries = Entries {
                    iter: map.iter(),
                    value: None,
                };
                let out = visitor.visit_map(&mut entries)?;
                if entries.iter.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(map.len(), &"fewer entries"))
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(FieldError::NotAnObject(kind_of_value(other))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((variant, value)) => visitor.visit_enum(Variant { variant, value }),
                None => Err(FieldError::Other),
            },
            other => Err(FieldError::WrongType {
                expected: "a string or an object with one key".to_owned(),
                found: kind_of_value(other),
            }),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct Seq<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = FieldError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, FieldError> {
        self.0.next().map(|v| seed.deserialize(Strict(v))).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = FieldError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, FieldError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, FieldError> {
        match self.value.take() {
            Some(v) => seed.deserialize(Strict(v)),
            None => Err(FieldError::Other),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An enum written as `{"variant": value}`.
struct Variant<'a> {
    variant: &'a str,
    value: &'a Value,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = FieldError;
    type Variant = Strict<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Strict<'de>), FieldError> {
        let tag = seed.deserialize(BorrowedStrDeserializer::new(self.variant))?;
        Ok((tag, Strict(self.value)))
    }
}

impl<'de> VariantAccess<'de> for Strict<'de> {
    type Error = FieldError;
    fn unit_variant(self) -> Result<(), FieldError> {
        match self.0 {
            Value::Null => Ok(()),
            other => Err(FieldError::WrongType {
                expected: "null".to_owned(),
                found: kind_of_value(other),
            }),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, FieldError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, FieldError> {
        self.deserialize_seq(visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        self.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Zone {
        start: String,
        timezone: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        to: Option<String>,
        quiet_hours: Option<Zone>,
        #[serde(rename = "ref")]
        reference: Option<Zone>,
        metadata: Option<Map<String, Value>>,
        items: Option<Vec<Zone>>,
    }

    fn err(raw: &str) -> JsonError {
        from_slice::<Body>(raw.as_bytes()).expect_err("refused")
    }

    #[test]
    fn a_plain_object_is_read() {
        let (b, v) = from_slice::<Body>(br#"{"to":"+14155550100","metadata":{"tags":["a","b"]}}"#).expect("ok");
        assert_eq!(b.to.as_deref(), Some("+14155550100"));
        assert_eq!(
            v["metadata"]["tags"][1], "b",
            "arrays are fine where any value is allowed"
        );
    }

    #[test]
    fn trailing_data_and_a_second_object_are_refused() {
        for raw in [r#"{"to":"x"}garbage"#, r#"{"to":"x"}{"to":"y"}"#, r#"{"to":"x"} 1"#] {
            let e = err(raw);
            assert_eq!(e.code, "invalid_json", "{raw}");
            assert!(e.message.contains("after"), "{raw}: {}", e.message);
        }
        assert!(
            from_slice::<Body>(b"{\"to\":\"x\"} \n").is_ok(),
            "whitespace may follow"
        );
    }

    #[test]
    fn a_top_level_array_or_scalar_is_refused() {
        for raw in [r#"["+14155550100","x",null]"#, "\"x\"", "null", "12"] {
            let e = err(raw);
            assert_eq!((e.code, e.field), ("invalid_json", None), "{raw}");
            assert!(e.message.contains("JSON object"), "{raw}");
        }
    }

    #[test]
    fn a_nested_struct_given_as_an_array_is_refused_naming_it() {
        let e = err(r#"{"ref":["calendar_event","evt"]}"#);
        assert_eq!(e.code, "invalid_json");
        assert_eq!(e.field.as_deref(), Some("ref"));
        let e = err(r#"{"items":[{"start":"a","timezone":"b"},["a","b"]]}"#);
        assert_eq!(e.field.as_deref(), Some("items[1]"));
    }

    #[test]
    fn a_wrong_type_names_the_field_and_not_the_value() {
        let e = err(r#"{"to":14155550100}"#);
        assert_eq!((e.code, e.field.as_deref()), ("invalid_json", Some("to")));
        assert!(!e.message.contains("14155550100"), "{}", e.message);
        assert!(e.message.contains("string"), "{}", e.message);
        let e = err(r#"{"quiet_hours":{"start":"21:00","timezone":5}}"#);
        assert_eq!(e.field.as_deref(), Some("quiet_hours.timezone"));
    }

    #[test]
    fn a_missing_nested_field_is_named_by_its_path() {
        let e = err(r#"{"quiet_hours":{"start":"21:00"}}"#);
        assert_eq!(e.code, "missing_field");
        assert_eq!(e.field.as_deref(), Some("quiet_hours.timezone"));
        assert!(e.message.contains("quiet_hours.timezone"));
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_key() {
        let e = err(r#"{"to":"+14155550100","to":"+14155550101"}"#);
        assert_eq!((e.code, e.field.as_deref()), ("invalid_json", Some("to")));
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert!(!e.message.contains("1415555010"), "{}", e.message);
        let e = err(r#"{"metadata":{"a":1,"a":2}}"#);
        assert_eq!(e.field.as_deref(), Some("metadata.a"));
        let e = err(r#"{"items":[{"start":"x","start":"y"}]}"#);
        assert_eq!(e.field.as_deref(), Some("items[0].start"));
    }

    #[test]
    fn a_shape_check_reports_only_structs_given_as_something_else() {
        let item: Value = serde_json::from_str(r#"["+14155550100","x"]"#).expect("json");
        let e = check_shape::<Zone>(&item, "messages[2]").expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("messages[2]"));
        let item: Value = serde_json::from_str(r#"{"to":1,"reference":null,"ref":["a","b"]}"#).expect("json");
        let e = check_shape::<Body>(&item, "messages[0]").expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("messages[0].ref"));
        let item: Value = serde_json::from_str(r#"{"to":1}"#).expect("json");
        assert!(
            check_shape::<Body>(&item, "messages[0]").is_ok(),
            "a wrong type is left to the use case"
        );
    }

    #[test]
    fn broken_json_says_where_without_quoting() {
        let e = err(r#"{"to": +14155550100}"#);
        assert_eq!(e.code, "invalid_json");
        assert!(e.message.contains("line 1"), "{}", e.message);
        assert!(!e.message.contains("14155550100"));
        assert!(err(r#"{"to": "x""#).message.contains("ends too early"));
    }

    // ---- properties ----

    use proptest::prelude::*;

    /// A JSON document as written, duplicate keys possible.
    #[derive(Debug, Clone)]
    enum Doc {
        Obj(Vec<(String, Doc)>),
        Arr(Vec<Doc>),
        Str(String),
        Num(i64),
        Bool(bool),
        Null,
    }

    impl Doc {
        fn render(&self) -> String {
            let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
            match self {
                Self::Obj(fields) => format!(
                    "{{{}}}",
                    fields
                        .iter()
                        .map(|(k, v)| format!("{}:{}", quote(k), v.render()))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Self::Arr(items) => format!("[{}]", items.iter().map(Self::render).collect::<Vec<_>>().join(",")),
                Self::Str(s) => quote(s),
                Self::Num(n) => n.to_string(),
                Self::Bool(b) => b.to_string(),
                Self::Null => "null".to_owned(),
            }
        }

        fn has_duplicate_key(&self) -> bool {
            match self {
                Self::Obj(fields) => {
                    let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                    keys.sort_unstable();
                    keys.windows(2).any(|w| w[0] == w[1]) || fields.iter().any(|(_, v)| v.has_duplicate_key())
                }
                Self::Arr(items) => items.iter().any(Self::has_duplicate_key),
                _ => false,
            }
        }
    }

    /// String values carry a phone-number-like marker so errors can be checked for quoting them.
    fn any_doc() -> impl Strategy<Value = Doc> {
        let leaf = prop_oneof![
            "[0-9]{4}".prop_map(|d| Doc::Str(format!("+1415555{d}"))),
            any::<i64>().prop_map(Doc::Num),
            any::<bool>().prop_map(Doc::Bool),
            Just(Doc::Null),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            let key = prop::sample::select(vec![
                "to",
                "ref",
                "start",
                "timezone",
                "items",
                "metadata",
                "quiet_hours",
                "a",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Doc::Arr),
                prop::collection::vec((key.prop_map(str::to_owned), inner), 0..5).prop_map(Doc::Obj),
            ]
        })
    }

    fn quotes_a_value(e: &JsonError) -> bool {
        e.message.contains("+1415555") || e.field.as_deref().is_some_and(|f| f.contains("+1415555"))
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_only_objects_are_accepted(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            match parse_object(&bytes) {
                Ok(map) => prop_assert_eq!(serde_json::from_slice::<Value>(&bytes).ok(), Some(Value::Object(map))),
                Err(e) => prop_assert_eq!(e.code, "invalid_json"),
            }
        }

        #[test]
        fn a_document_is_accepted_exactly_when_it_is_an_object_without_duplicate_keys(
            doc in any_doc(), pad in "[ \t\n]{0,2}", trailing in prop::option::of(prop::sample::select(vec!["{}", "x", "1", ",", "]"])),
        ) {
            let text = format!("{pad}{}{pad}{}", doc.render(), trailing.unwrap_or_default());
            let result = parse_object(text.as_bytes());
            let want_ok = matches!(doc, Doc::Obj(_)) && !doc.has_duplicate_key() && trailing.is_none();
            match result {
                Ok(map) => {
                    prop_assert!(want_ok, "accepted {}", text);
                    prop_assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(Value::Object(map)));
                }
                Err(e) => {
                    prop_assert!(!want_ok, "refused {}: {:?}", text, e);
                    prop_assert_eq!(e.code, "invalid_json");
                    prop_assert!(!quotes_a_value(&e), "{:?}", e);
                    if matches!(doc, Doc::Obj(_)) && doc.has_duplicate_key() && trailing.is_none() {
                        prop_assert!(e.message.starts_with("duplicate key"), "{:?}", e);
                        prop_assert!(e.field.is_some());
                    }
                }
            }
        }

        #[test]
        fn reading_a_struct_never_panics_nor_quotes_a_value(doc in any_doc()) {
            match from_slice::<Body>(doc.render().as_bytes()) {
                Ok((_, value)) => {
                    prop_assert!(value.is_object());
                    // What the strict reader accepts, plain serde accepts too.
                    prop_assert!(serde_json::from_value::<Body>(value).is_ok());
                }
                Err(e) => {
                    prop_assert!(e.code == "invalid_json" || e.code == "missing_field");
                    prop_assert!(!quotes_a_value(&e), "{:?}", e);
                }
            }
        }
    }
}

//! Reading a management request's JSON body the way LiteLLM's FastAPI/pydantic models do.
//!
//! Unknown fields are ignored (pydantic's default). Known fields are coerced in pydantic's lax
//! mode: a number may arrive as a numeric string (`"5"`), an integer as a whole float (`10.0`),
//! a boolean as `"true"`/`"no"`/`1`. Anything else is a 422 whose `detail` items have FastAPI's
//! shape (`type`, `loc`, `msg`, `input`), all collected before answering. A field sent as
//! `null` is told apart from one left out: `/key/update` gives `null` a meaning.

use serde_json::{json, Map, Value};

use super::error::KeyApiError;

/// One field of the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    /// Not in the body.
    Absent,
    /// Sent as `null`.
    Null,
    /// Sent with a valid value.
    Value(T),
}

impl<T> Field<T> {
    /// The value, treating `null` like absence (LiteLLM's `exclude_none`).
    pub fn value(self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }

    /// A reference to the value, if any.
    pub fn as_value(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }

    /// True when the body named the field (with a value or `null`).
    pub fn is_set(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

/// A body being validated: the object and the problems found so far.
#[derive(Debug)]
pub struct Body {
    object: Map<String, Value>,
    errors: Vec<Value>,
}

/// One FastAPI validation item.
pub fn detail(kind: &str, loc: &[Value], msg: &str, input: &Value) -> Value {
    json!({ "type": kind, "loc": loc, "msg": msg, "input": input })
}

impl Body {
    /// Parses `bytes`; `None` when the body is empty and `required` is false.
    pub fn parse(bytes: &[u8], required: bool) -> Result<Option<Self>, KeyApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            if required {
                let missing = detail("missing", &[json!("body")], "Field required", &Value::Null);
                return Err(KeyApiError::Validation(vec![missing]));
            }
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|err| {
            let mut item = detail(
                "json_invalid",
                &[json!("body"), json!(err.column())],
                "JSON decode error",
                &json!({}),
            );
            item["ctx"] = json!({ "error": err.to_string() });
            KeyApiError::Validation(vec![item])
        })?;
        match value {
            Value::Object(object) => Ok(Some(Self {
                object,
                errors: Vec::new(),
            })),
            Value::Null if !required => Ok(None),
            other => Err(KeyApiError::Validation(vec![detail(
                "model_attributes_type",
                &[json!("body")],
                "Input should be a valid dictionary or object to extract fields from",
                &other,
            )])),
        }
    }

    /// An empty object (a request sent without a body where one is optional).
    pub fn empty() -> Self {
        Self {
            object: Map::new(),
            errors: Vec::new(),
        }
    }

    /// The whole object (for validators that look at several fields).
    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }

    /// Records a problem with `name`.
    pub fn fail(&mut self, name: &str, kind: &str, msg: &str) {
        let input = self.object.get(name).cloned().unwrap_or(Value::Null);
        self.errors
            .push(detail(kind, &[json!("body"), json!(name)], msg, &input));
    }

    /// Records a validation item as is.
    pub fn push(&mut self, item: Value) {
        self.errors.push(item);
    }

    fn field<T>(
        &mut self,
        name: &str,
        coerce: impl FnOnce(&Value) -> Result<T, (&'static str, &'static str)>,
    ) -> Field<T> {
        match self.object.get(name) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(value) => match coerce(value) {
                Ok(v) => Field::Value(v),
                Err((kind, msg)) => {
                    self.fail(name, kind, msg);
                    Field::Absent
                }
            },
        }
    }

    /// A string field (`Optional[str]`).
    pub fn string(&mut self, name: &str) -> Field<String> {
        self.field(name, |v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(("string_type", "Input should be a valid string")),
        })
    }

    /// A number field (`Optional[float]`).
    pub fn float(&mut self, name: &str) -> Field<f64> {
        self.field(name, lax_float)
    }

    /// An integer field (`Optional[int]`).
    pub fn int(&mut self, name: &str) -> Field<i64> {
        self.field(name, lax_int)
    }

    /// A boolean field (`Optional[bool]`).
    pub fn bool(&mut self, name: &str) -> Field<bool> {
        self.field(name, lax_bool)
    }

    /// A JSON object field (`Optional[dict]`).
    pub fn dict(&mut self, name: &str) -> Field<Map<String, Value>> {
        self.field(name, |v| match v {
            Value::Object(m) => Ok(m.clone()),
            _ => Err(("dict_type", "Input should be a valid dictionary")),
        })
    }

    /// A list of strings (`Optional[List[str]]`), each item checked.
    pub fn strings(&mut self, name: &str) -> Field<Vec<String>> {
        let items = match self.object.get(name) {
            None => return Field::Absent,
            Some(Value::Null) => return Field::Null,
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                self.fail(name, "list_type", "Input should be a valid list");
                return Field::Absent;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => self.errors.push(detail(
                    "string_type",
                    &[json!("body"), json!(name), json!(i)],
                    "Input should be a valid string",
                    other,
                )),
            }
        }
        Field::Value(out)
    }

    /// Ends validation: 422 with every problem found, if any.
    pub fn finish(self) -> Result<(), KeyApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(KeyApiError::Validation(self.errors))
        }
    }
}

/// pydantic's lax float: a number, a numeric string, or a boolean.
pub fn lax_float(v: &Value) -> Result<f64, (&'static str, &'static str)> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or(("float_type", "Input should be a valid number")),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or((
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
            )),
        _ => Err(("float_type", "Input should be a valid number")),
    }
}

/// pydantic's lax int: an integer, a whole float, an integer string, or a boolean.
pub fn lax_int(v: &Value) -> Result<i64, (&'static str, &'static str)> {
    const FRACTION: (&str, &str) = (
        "int_from_float",
        "Input should be a valid integer, got a number with a fractional part",
    );
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
            (None, Some(_)) => Err(FRACTION),
            _ => Err(("int_type", "Input should be a valid integer")),
        },
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            (
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        }),
        _ => Err(("int_type", "Input should be a valid integer")),
    }
}

/// pydantic's lax bool: a boolean, 0 or 1, or one of its accepted words.
pub fn lax_bool(v: &Value) -> Result<bool, (&'static str, &'static str)> {
    const PARSING: (&str, &str) = (
        "bool_parsing",
        "Input should be a valid boolean, unable to interpret input",
    );
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Ok(false),
            Some(1.0) => Ok(true),
            _ => Err(PARSING),
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
            _ => Err(PARSING),
        },
        _ => Err(("bool_type", "Input should be a valid boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body {
        Body::parse(text.as_bytes(), true).unwrap().unwrap()
    }

    #[test]
    fn lax_coercions() {
        let mut b = body(
            r#"{"a":"5","b":10.0,"c":"yes","d":null,"e":["x"],"f":{"k":1},"g":"2.5","h":true}"#,
        );
        assert_eq!(b.float("a"), Field::Value(5.0));
        assert_eq!(b.int("b"), Field::Value(10));
        assert_eq!(b.bool("c"), Field::Value(true));
        assert_eq!(b.string("d"), Field::Null);
        assert_eq!(b.strings("e"), Field::Value(vec!["x".to_owned()]));
        assert!(matches!(b.dict("f"), Field::Value(_)));
        assert_eq!(b.float("g"), Field::Value(2.5));
        assert_eq!(b.int("h"), Field::Value(1));
        assert_eq!(b.string("missing"), Field::Absent);
        b.finish().unwrap();
    }

    #[test]
    fn every_type_error_is_reported_in_fastapi_shape() {
        let mut b = body(r#"{"a":"x","b":1.5,"c":"maybe","d":5,"e":"gpt","f":[1],"g":[]}"#);
        b.float("a");
        b.int("b");
        b.bool("c");
        b.string("d");
        b.strings("e");
        b.strings("f");
        b.dict("g");
        let Err(KeyApiError::Validation(items)) = b.finish() else {
            panic!("expected a validation error");
        };
        let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "float_parsing",
                "int_from_float",
                "bool_parsing",
                "string_type",
                "list_type",
                "string_type",
                "dict_type"
            ]
        );
        assert_eq!(items[0]["loc"], json!(["body", "a"]));
        assert_eq!(items[0]["input"], json!("x"));
        assert_eq!(items[5]["loc"], json!(["body", "f", 0]));
    }

    #[test]
    fn bodies_that_are_not_objects() {
        assert!(Body::parse(b"", false).unwrap().is_none());
        assert!(Body::parse(b"null", false).unwrap().is_none());
        for (text, kind) in [
            ("", "missing"),
            ("[1]", "model_attributes_type"),
            ("{", "json_invalid"),
        ] {
            let Err(KeyApiError::Validation(items)) = Body::parse(text.as_bytes(), true) else {
                panic!("{text:?} should not validate");
            };
            assert_eq!(items[0]["type"], kind, "{text:?}");
        }
    }
}

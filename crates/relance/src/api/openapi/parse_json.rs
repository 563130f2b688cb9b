//! Self-contained JSON Schemas for Power Automate's "Parse JSON" action, derived from the
//! OpenAPI components: references inlined (Parse JSON does not follow them), and a
//! nullable value written as a type list (`["string","null"]`), the form Parse JSON
//! accepts for fields that may be null.

use serde_json::{Map, Value, json};

/// The component `name` as one standalone schema, or `None` when there is no such
/// component.
pub fn standalone(openapi: &Value, name: &str) -> Option<Value> {
    let components = openapi.pointer("/components/schemas")?;
    let root = components.get(name)?;
    let mut schema = inline(components, root, &mut vec![name.to_owned()]);
    if let Value::Object(m) = &mut schema {
        m.insert("$schema".into(), json!("http://json-schema.org/draft-04/schema#"));
        m.insert("title".into(), json!(name));
    }
    Some(schema)
}

fn inline(components: &Value, s: &Value, path: &mut Vec<String>) -> Value {
    let Value::Object(src) = s else { return s.clone() };
    if let Some(name) = src.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
        // A recursive type would inline forever; no Relance payload is recursive, but
        // stop rather than loop if one becomes so.
        if path.iter().any(|p| p == name) {
            return json!({});
        }
        let Some(target) = components.get(name) else { return json!({}) };
        path.push(name.to_owned());
        let out = inline(components, target, path);
        path.pop();
        return out;
    }
    if let Some(Value::Array(alts)) = src.get("oneOf") {
        let is_null = |a: &&Value| a.get("type").is_some_and(|t| t == "null");
        let real: Vec<&Value> = alts.iter().filter(|a| !is_null(a)).collect();
        if real.len() == 1 && real.len() < alts.len() {
            let mut inner = inline(components, real[0], path);
            make_nullable(&mut inner);
            copy_description(src, &mut inner);
            return inner;
        }
    }
    let mut out = Map::new();
    for (key, value) in src {
        let v = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), inline(components, v, path))).collect())
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" if value.is_object() => inline(components, value, path),
            "oneOf" | "anyOf" | "allOf" => {
                Value::Array(value.as_array().into_iter().flatten().map(|v| inline(components, v, path)).collect())
            }
            // Draft-04 knows `examples` neither as a list nor at all; drop it.
            "examples" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), v);
    }
    Value::Object(out)
}

fn make_nullable(schema: &mut Value) {
    let Value::Object(m) = schema else { return };
    match m.get("type").cloned() {
        Some(Value::String(t)) => {
            m.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(mut ts)) => {
            if !ts.iter().any(|t| t == "null") {
                ts.push(json!("null"));
            }
            m.insert("type".into(), Value::Array(ts));
        }
        _ => {}
    }
    if let Some(Value::Array(values)) = m.get_mut("enum")
        && !values.iter().any(Value::is_null)
    {
        values.push(Value::Null);
    }
}

fn copy_description(src: &Map<String, Value>, out: &mut Value) {
    if let (Some(d), Value::Object(m)) = (src.get("description"), out) {
        m.insert("description".into(), d.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_inlined_and_nullables_as_type_lists() {
        let doc = json!({"components": {"schemas": {
            "Outer": {"type": "object", "properties": {
                "inner": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Inner"}]},
                "name": {"type": ["string", "null"]},
                "kind": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Kind"}]}
            }},
            "Inner": {"type": "object", "properties": {"x": {"type": "integer", "examples": [1]}}},
            "Kind": {"type": "string", "enum": ["a", "b"]}
        }}});
        let s = standalone(&doc, "Outer").unwrap();
        assert_eq!(s["properties"]["inner"]["type"], json!(["object", "null"]));
        assert_eq!(s["properties"]["inner"]["properties"]["x"], json!({"type": "integer"}));
        assert_eq!(s["properties"]["name"]["type"], json!(["string", "null"]));
        assert_eq!(s["properties"]["kind"], json!({"type": ["string", "null"], "enum": ["a", "b", null]}));
        assert!(standalone(&doc, "Missing").is_none());
        assert!(!s.to_string().contains("$ref"));
    }
}

//! OpenAPI 3.1 → Swagger 2.0, for Power Automate custom connectors (which accept only
//! 2.0). The conversion is mechanical where 2.0 can say the same thing, and otherwise
//! keeps what a connector needs:
//! - nullable types (`["string","null"]`, `oneOf` with `null`) become the type plus
//!   `x-nullable: true`;
//! - a `oneOf` of objects becomes one object with every property, none required (2.0
//!   has no unions); any other `oneOf` keeps its first alternative;
//! - a request body becomes the `body` parameter (JSON preferred); non-JSON bodies and
//!   answers become strings;
//! - both bearer schemes become one API key in the `Authorization` header: the user
//!   types `Bearer <token>` when creating the connection;
//! - every parameter gets the `x-ms-summary` Power Automate shows as its label (Title
//!   Case, from its name or, for a body, its schema's name), as Microsoft's connector
//!   certification asks.

use serde_json::{Map, Value, json};

/// Where the connector sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`, no scheme.
    pub host: String,
    pub base_path: String,
    pub scheme: String,
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

pub fn convert(doc: &Value, target: &Target) -> Value {
    let components = doc.pointer("/components/schemas").cloned().unwrap_or_else(|| json!({}));
    let conv = Converter { components: &components };
    let mut definitions = Map::new();
    if let Value::Object(schemas) = &components {
        for (name, schema) in schemas {
            definitions.insert(name.clone(), conv.schema(schema));
        }
    }
    let mut paths = Map::new();
    if let Some(Value::Object(src)) = doc.get("paths") {
        for (path, item) in src {
            let mut out = Map::new();
            for method in METHODS {
                if let Some(op) = item.get(*method) {
                    out.insert((*method).to_owned(), conv.operation(op));
                }
            }
            paths.insert(path.clone(), Value::Object(out));
        }
    }
    let info = &doc["info"];
    let mut info_out = json!({
        "title": info["title"],
        "version": info["version"],
    });
    if let Some(d) = info.get("description") {
        info_out["description"] = d.clone();
    }
    json!({
        "swagger": "2.0",
        "info": info_out,
        "host": target.host,
        "basePath": target.base_path,
        "schemes": [target.scheme],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "api_key": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "Bearer followed by an API key with the editor role (`relance keys create --name power-automate --role editor`): `Bearer rlk_…`",
            }
        },
        "tags": doc.get("tags").cloned().unwrap_or_else(|| json!([])),
        "paths": paths,
        "definitions": definitions,
    })
}

/// `skip_invalid` → `Skip Invalid`, `Idempotency-Key` → `Idempotency Key`,
/// `ContactUpdate` → `Contact Update`: a label for Power Automate's forms.
fn title_case(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == ' ' {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    words.extend((!current.is_empty()).then_some(current));
    let label: Vec<String> = words
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|f| f.to_uppercase().chain(chars).collect()).unwrap_or_default()
        })
        .collect();
    let label = label.join(" ");
    label.chars().take(80).collect()
}

struct Converter<'a> {
    components: &'a Value,
}

impl Converter<'_> {
    fn resolve<'v>(&'v self, schema: &'v Value) -> &'v Value {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => self.components.get(name).unwrap_or(schema),
            None => schema,
        }
    }

    fn operation(&self, op: &Value) -> Value {
        let mut out = Map::new();
        let id = op["operationId"].as_str().unwrap_or("operation");
        out.insert("operationId".into(), json!(id));
        // Power Automate shows the summary as the action's name: required, short, no
        // trailing period.
        let summary = op["summary"].as_str().unwrap_or(id).trim_end_matches('.');
        out.insert("summary".into(), json!(summary));
        if let Some(d) = op.get("description") {
            out.insert("description".into(), d.clone());
        }
        if let Some(t) = op.get("tags") {
            out.insert("tags".into(), t.clone());
        }
        let mut parameters: Vec<Value> = op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().map(|p| self.parameter(p)).collect())
            .unwrap_or_default();
        if let Some(body) = op.get("requestBody") {
            let content = body.get("content").and_then(Value::as_object);
            let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
            let json_type = types.iter().find(|t| t.contains("json")).copied();
            let (chosen, schema) = match json_type.or(types.first().copied()) {
                Some(t) => {
                    let schema = &body["content"][t]["schema"];
                    let schema = if t.contains("json") { self.schema(schema) } else { json!({"type": "string"}) };
                    (Some(t), schema)
                }
                None => (None, json!({})),
            };
            let label = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .map(title_case)
                .unwrap_or_else(|| "Body".to_owned());
            let mut param = json!({
                "name": "body",
                "in": "body",
                "required": body.get("required").and_then(Value::as_bool).unwrap_or(false),
                "schema": schema,
                "x-ms-summary": label,
            });
            if let Some(d) = body.get("description") {
                param["description"] = d.clone();
            }
            parameters.push(param);
            if let Some(t) = chosen {
                out.insert("consumes".into(), json!([t]));
            }
        }
        if !parameters.is_empty() {
            out.insert("parameters".into(), Value::Array(parameters));
        }
        let mut responses = Map::new();
        let mut produces: Vec<String> = Vec::new();
        if let Some(Value::Object(rs)) = op.get("responses") {
            for (code, r) in rs {
                let mut resp = json!({"description": r.get("description").cloned().unwrap_or_else(|| json!(""))});
                if let Some(Value::Object(content)) = r.get("content")
                    && let Some((t, media)) = content.iter().find(|(t, _)| t.contains("json")).or(content.iter().next())
                {
                    resp["schema"] =
                        if t.contains("json") { self.schema(&media["schema"]) } else { json!({"type": "string"}) };
                    if !produces.contains(t) {
                        produces.push(t.clone());
                    }
                }
                responses.insert(code.clone(), resp);
            }
        }
        out.insert("responses".into(), Value::Object(responses));
        if !produces.is_empty() {
            out.insert("produces".into(), json!(produces));
        }
        if op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty()) {
            out.insert("security".into(), json!([{"api_key": []}]));
        }
        Value::Object(out)
    }

    /// A 2.0 non-body parameter carries its type inline, without `schema`.
    fn parameter(&self, p: &Value) -> Value {
        let location = p["in"].as_str().unwrap_or("query");
        let mut out = json!({
            "name": p["name"],
            "in": location,
            "required": location == "path" || p.get("required").and_then(Value::as_bool).unwrap_or(false),
            "x-ms-summary": title_case(p["name"].as_str().unwrap_or("value")),
        });
        if let Some(d) = p.get("description") {
            out["description"] = d.clone();
        }
        let schema = self.schema(self.resolve(&p["schema"]));
        let schema = match schema.get("$ref") {
            Some(_) => self.schema(self.resolve(&schema)),
            None => schema,
        };
        for key in ["type", "format", "enum", "minimum", "maximum", "pattern", "minLength", "maxLength", "default"] {
            if let Some(v) = schema.get(key) {
                out[key] = v.clone();
            }
        }
        if out.get("type").is_none() {
            out["type"] = json!("string");
        }
        if out["type"] == "array" {
            out["items"] = schema.get("items").cloned().unwrap_or_else(|| json!({"type": "string"}));
        }
        out
    }

    /// One schema, recursively.
    fn schema(&self, s: &Value) -> Value {
        let Value::Object(src) = s else { return json!({}) };
        if let Some(Value::String(r)) = src.get("$ref") {
            return json!({"$ref": r.replace("#/components/schemas/", "#/definitions/")});
        }
        if let Some(Value::Array(alts)) = src.get("oneOf").or_else(|| src.get("anyOf")) {
            return self.union(src, alts);
        }
        let mut out = Map::new();
        for (key, value) in src {
            match key.as_str() {
                "type" => match value {
                    Value::Array(types) => {
                        let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                        if real.len() == 1 {
                            out.insert("type".into(), real[0].clone());
                        }
                        if real.len() < types.len() {
                            out.insert("x-nullable".into(), json!(true));
                        }
                    }
                    Value::String(t) if t == "null" => {}
                    other => {
                        out.insert("type".into(), other.clone());
                    }
                },
                "properties" => {
                    let props = value
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), self.schema(v))).collect::<Map<_, _>>())
                        .unwrap_or_default();
                    out.insert(key.clone(), Value::Object(props));
                }
                "items" => {
                    out.insert(key.clone(), self.schema(value));
                }
                "additionalProperties" => {
                    let v = if value.is_object() { self.schema(value) } else { value.clone() };
                    out.insert(key.clone(), v);
                }
                "allOf" => {
                    let parts =
                        value.as_array().map(|a| a.iter().map(|p| self.schema(p)).collect()).unwrap_or_default();
                    out.insert(key.clone(), Value::Array(parts));
                }
                "examples" => {
                    if let Some(first) = value.as_array().and_then(|a| a.first()) {
                        out.insert("example".into(), first.clone());
                    }
                }
                "const" => {
                    out.insert("enum".into(), json!([value]));
                }
                "enum" => {
                    let values: Vec<Value> =
                        value.as_array().into_iter().flatten().filter(|v| !v.is_null()).cloned().collect();
                    if values.len() < value.as_array().map_or(0, Vec::len) {
                        out.insert("x-nullable".into(), json!(true));
                    }
                    out.insert(key.clone(), Value::Array(values));
                }
                "exclusiveMinimum" | "exclusiveMaximum" if value.is_number() => {
                    let bound = if key == "exclusiveMinimum" { "minimum" } else { "maximum" };
                    out.insert(bound.into(), value.clone());
                    out.insert(key.clone(), json!(true));
                }
                // A null default is what "absent" means already, and 2.0 validators reject it.
                "default" if value.is_null() => {}
                "required" | "description" | "title" | "format" | "default" | "minimum" | "maximum" | "minLength"
                | "maxLength" | "pattern" | "minItems" | "maxItems" | "uniqueItems" | "minProperties"
                | "maxProperties" | "multipleOf" | "readOnly" => {
                    out.insert(key.clone(), value.clone());
                }
                // 3.1 / JSON Schema 2020-12 keywords 2.0 cannot express.
                _ => {}
            }
        }
        Value::Object(out)
    }

    fn union(&self, src: &Map<String, Value>, alts: &[Value]) -> Value {
        let is_null = |a: &Value| a.get("type").is_some_and(|t| t == "null");
        let nullable = alts.iter().any(is_null);
        let real: Vec<&Value> = alts.iter().filter(|a| !is_null(a)).collect();
        let mut out = if real.len() == 1 {
            self.schema(real[0])
        } else if !real.is_empty() && real.iter().all(|a| self.resolve(a).get("properties").is_some()) {
            let mut props = Map::new();
            for a in &real {
                if let Some(Value::Object(p)) = self.resolve(a).get("properties") {
                    for (k, v) in p {
                        props.entry(k.clone()).or_insert_with(|| self.schema(v));
                    }
                }
            }
            json!({"type": "object", "properties": props})
        } else {
            real.first().map(|a| self.schema(a)).unwrap_or_else(|| json!({}))
        };
        if let Some(d) = src.get("description") {
            // Siblings of `$ref` are ignored in 2.0: wrap instead of losing the text.
            if out.get("$ref").is_some() {
                out = json!({"allOf": [out]});
            }
            out["description"] = d.clone();
        }
        if nullable {
            if out.get("$ref").is_some() {
                out = json!({"allOf": [out]});
            }
            out["x-nullable"] = json!(true);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target { host: "relance.example.fr".into(), base_path: "/".into(), scheme: "https".into() }
    }

    #[test]
    fn nullable_types_and_unions() {
        let components = json!({"A": {"type": "object", "properties": {"x": {"type": "integer"}}},
                                "B": {"type": "object", "properties": {"y": {"type": "string"}}}});
        let c = Converter { components: &components };
        assert_eq!(c.schema(&json!({"type": ["string", "null"]})), json!({"type": "string", "x-nullable": true}));
        assert_eq!(
            c.schema(&json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/A"}]})),
            json!({"allOf": [{"$ref": "#/definitions/A"}], "x-nullable": true})
        );
        let merged =
            c.schema(&json!({"oneOf": [{"$ref": "#/components/schemas/A"}, {"$ref": "#/components/schemas/B"}]}));
        assert_eq!(merged["properties"]["x"]["type"], "integer");
        assert_eq!(merged["properties"]["y"]["type"], "string");
        assert_eq!(c.schema(&json!({"examples": [1, 2], "const": 3})), json!({"example": 1, "enum": [3]}));
    }

    #[test]
    fn operations_become_2_0() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "T", "version": "1", "license": {"name": "MIT", "identifier": "MIT"}},
            "paths": {"/api/things/{id}": {"put": {
                "operationId": "PutThing", "summary": "Put a thing.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "n", "in": "query", "schema": {"type": ["integer", "null"], "minimum": 1}}],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}, "required": true},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}},
                              "400": {"description": "bad"}},
                "security": [{"admin_token": []}]
            }}},
            "components": {"schemas": {"A": {"type": "object"}}}
        });
        let out = convert(&doc, &target());
        let op = &out["paths"]["/api/things/{id}"]["put"];
        assert_eq!(out["swagger"], "2.0");
        assert_eq!(out["host"], "relance.example.fr");
        assert_eq!(op["summary"], "Put a thing");
        assert_eq!(
            op["parameters"][1],
            json!({"name": "n", "in": "query", "required": false, "type": "integer", "minimum": 1, "x-ms-summary": "N"})
        );
        assert_eq!(op["parameters"][2]["in"], "body");
        assert_eq!(op["parameters"][2]["schema"]["$ref"], "#/definitions/A");
        assert_eq!(op["responses"]["200"]["schema"]["$ref"], "#/definitions/A");
        assert_eq!(op["security"], json!([{"api_key": []}]));
        assert!(out["info"].get("license").is_none());
        assert_eq!(op["parameters"][2]["x-ms-summary"], "A");
    }

    #[test]
    fn labels_are_title_case() {
        assert_eq!(title_case("skip_invalid"), "Skip Invalid");
        assert_eq!(title_case("Idempotency-Key"), "Idempotency Key");
        assert_eq!(title_case("ContactUpdate"), "Contact Update");
        assert_eq!(title_case("key"), "Key");
    }
}

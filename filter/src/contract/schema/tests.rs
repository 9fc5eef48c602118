//! Translation, validation, redaction and shapes, through the schema set as the policy
//! builds it.

use serde_json::json;

use super::*;
use crate::contract::shape::Shape;

const COMPONENTS: &str = r##"{
    "Pet": {"type": "object", "required": ["name"], "properties": {
        "id": {"type": "integer", "format": "int64", "readOnly": true},
        "name": {"type": "string", "maxLength": 20},
        "secret": {"type": "string", "writeOnly": true}}},
    "Cat": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}, "purrs": {"type": "boolean"}}},
    "Dog": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}, "barks": {"type": "boolean"}}},
    "Free": {"type": "object"},
    "Open": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true},
    "Id": {"type": "integer", "readOnly": true},
    "Secret": {"type": "string", "writeOnly": true},
    "Audit": {"type": "object", "properties": {"createdBy": {"type": "string", "readOnly": true}}},
    "Account": {"type": "object", "required": ["id", "name"], "properties": {
        "id": {"allOf": [{"$ref": "#/components/schemas/Id"}]},
        "name": {"type": "string"},
        "password": {"anyOf": [{"$ref": "#/components/schemas/Secret"}]},
        "owner": {"oneOf": [{"$ref": "#/components/schemas/Id"}, {"type": "string"}]}}}
}"##;

fn set(version: Version) -> SchemaSet {
    let components: BTreeMap<String, Box<RawValue>> = serde_json::from_str(COMPONENTS).unwrap();
    SchemaSet::new(version, components, "test.yaml")
}

fn schema(text: &str, direction: Direction, strict: bool) -> Schema {
    Schema::new(
        RawValue::from_string(text.to_owned()).unwrap(),
        "/test".to_owned(),
        Context { direction, strict },
    )
}

/// The keywords that fail for `instance`, empty when it is valid.
fn check(
    version: Version,
    text: &str,
    direction: Direction,
    strict: bool,
    instance: Value,
) -> Vec<String> {
    let set = set(version);
    schema(text, direction, strict)
        .validate(&set, &instance)
        .into_iter()
        .map(|v| format!("{} {}", v.pointer, v.keyword))
        .collect()
}

fn request(version: Version, text: &str, instance: Value) -> Vec<String> {
    check(version, text, Direction::Request, false, instance)
}

use Version::{V3_0, V3_1};

#[test]
fn nullable_3_0() {
    let s = r#"{"type": "string", "nullable": true, "enum": ["a"]}"#;
    assert!(request(V3_0, s, json!(null)).is_empty());
    assert!(request(V3_0, s, json!("a")).is_empty());
    assert_eq!(request(V3_0, s, json!("b")), [" enum"]);
    assert_eq!(
        request(V3_0, r#"{"type": "string"}"#, json!(null)),
        [" type"]
    );
    let via_ref = r##"{"allOf": [{"$ref": "#/components/schemas/Cat"}], "nullable": true}"##;
    assert!(request(V3_0, via_ref, json!(null)).is_empty());
    assert!(!request(V3_0, via_ref, json!({})).is_empty());
}

#[test]
fn nullable_is_not_a_3_1_keyword() {
    assert!(!request(V3_1, r#"{"type": "string", "nullable": true}"#, json!(null)).is_empty());
    assert!(request(V3_1, r#"{"type": ["string", "null"]}"#, json!(null)).is_empty());
}

#[test]
fn exclusive_bounds_by_dialect() {
    let s30 = r#"{"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 5}"#;
    assert_eq!(request(V3_0, s30, json!(1)), [" exclusiveMinimum"]);
    assert!(request(V3_0, s30, json!(1.5)).is_empty());
    assert!(request(V3_0, s30, json!(5)).is_empty());
    let s31 = r#"{"type": "number", "exclusiveMaximum": 5}"#;
    assert_eq!(request(V3_1, s31, json!(5)), [" exclusiveMaximum"]);
}

#[test]
fn ref_siblings_are_ignored_in_3_0_only() {
    let s = r##"{"$ref": "#/components/schemas/Cat", "maxProperties": 1}"##;
    assert!(request(V3_0, s, json!({"kind": "x", "purrs": true})).is_empty());
    assert_eq!(
        request(V3_1, s, json!({"kind": "x", "purrs": true})),
        [" maxProperties"]
    );
}

#[test]
fn integer_formats_are_ranges() {
    let s = r#"{"type": "integer", "format": "int32"}"#;
    assert!(request(V3_0, s, json!(2_147_483_647)).is_empty());
    assert_eq!(request(V3_0, s, json!(2_147_483_648u64)), [" maximum"]);
    assert_eq!(request(V3_1, s, json!(-2_147_483_649i64)), [" minimum"]);
}

#[test]
fn string_formats_are_checked() {
    for (format, good, bad) in [
        ("uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "7c9e6679"),
        ("date", "2024-02-29", "2023-02-29"),
        ("date-time", "2024-01-01T10:00:00Z", "2024-01-01 10:00"),
        ("email", "a@example.com", "a.example.com"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("ipv6", "::1", "::g"),
        ("uri", "https://example.com/a", "not a uri"),
    ] {
        let s = format!(r#"{{"type": "string", "format": "{format}"}}"#);
        assert!(request(V3_1, &s, json!(good)).is_empty(), "{format} {good}");
        assert_eq!(request(V3_1, &s, json!(bad)), [" format"], "{format} {bad}");
    }
}

#[test]
fn read_only_must_not_be_sent_and_write_only_must_not_come_back() {
    let s = r##"{"$ref": "#/components/schemas/Pet"}"##;
    assert!(request(V3_0, s, json!({"name": "rex", "secret": "s"})).is_empty());
    assert_eq!(
        request(V3_0, s, json!({"name": "rex", "id": 1})),
        ["/id false"]
    );
    let response = |i| check(V3_0, s, Direction::Response, false, i);
    assert!(response(json!({"name": "rex", "id": 1})).is_empty());
    assert_eq!(
        response(json!({"name": "rex", "secret": "s"})),
        ["/secret false"]
    );
    let required = r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "readOnly": true}}}"#;
    assert!(
        request(V3_0, required, json!({})).is_empty(),
        "a readOnly property is not required in a request"
    );
}

#[test]
fn read_only_and_write_only_behind_compositions_and_references() {
    let account = r##"{"$ref": "#/components/schemas/Account"}"##;
    // `id` is readOnly through allOf + $ref: refused, and not required, in a request.
    assert!(request(V3_1, account, json!({"name": "a"})).is_empty());
    assert!(!request(V3_1, account, json!({"name": "a", "id": 1})).is_empty());
    // `owner` may be a readOnly id or a string: only the string may be sent.
    assert!(request(V3_1, account, json!({"name": "a", "owner": "me"})).is_empty());
    assert!(!request(V3_1, account, json!({"name": "a", "owner": 7})).is_empty());
    // readOnly inside an allOf branch of the body itself.
    let audited = r##"{"allOf": [{"$ref": "#/components/schemas/Audit"},
        {"type": "object", "properties": {"name": {"type": "string"}}}]}"##;
    assert!(request(V3_0, audited, json!({"name": "a"})).is_empty());
    assert!(!request(V3_0, audited, json!({"name": "a", "createdBy": "x"})).is_empty());
    // writeOnly through anyOf + $ref must not come back, and is redacted.
    let response = |i| check(V3_1, account, Direction::Response, false, i);
    assert!(response(json!({"id": 1, "name": "a"})).is_empty());
    assert!(!response(json!({"id": 1, "name": "a", "password": "p"})).is_empty());
    let set = set(V3_1);
    let raw = RawValue::from_string(account.to_owned()).unwrap();
    let mut value = json!({"id": 1, "name": "a", "password": "p", "extra": 1});
    assert_eq!(set.redact(&raw, &mut value), 2);
    assert_eq!(value, json!({"id": 1, "name": "a"}));
}

#[test]
fn strict_mode_refuses_case_variants_of_declared_properties() {
    let open = r##"{"$ref": "#/components/schemas/Open"}"##;
    let strict = |s: &str, i| check(V3_1, s, Direction::Request, true, i);
    assert!(strict(open, json!({"a": "x", "b": 1})).is_empty());
    assert!(!strict(open, json!({"A": "x"})).is_empty());
    let names = r#"{"type": "object", "additionalProperties": true, "properties": {
        "role": {"enum": ["user"]}, "risk.score": {"type": "integer"}}}"#;
    assert!(strict(names, json!({"role": "user", "risk.score": 1, "other": 1})).is_empty());
    for variant in ["ROLE", "Role", "rolE", "RISK.SCORE", "risk_score_"] {
        let refused = !strict(names, json!({ variant: "admin" })).is_empty();
        assert_eq!(refused, variant != "risk_score_", "{variant}");
    }
    // Go folds the long s and the Kelvin sign too.
    let sk = r#"{"type": "object", "additionalProperties": true, "properties": {"ask": {"type": "string"}}}"#;
    assert!(!strict(sk, json!({"a\u{17F}\u{212A}": 1})).is_empty());
    // Outside strict mode, nothing changes.
    assert!(request(V3_1, names, json!({"ROLE": "admin"})).is_empty());
}

#[test]
fn discriminator_selects_the_branch() {
    let s = r##"{"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                "discriminator": {"propertyName": "kind", "mapping": {"dog": "#/components/schemas/Dog"}}}"##;
    // Without the discriminator a Cat also matches Dog (oneOf would fail); with it,
    // `kind` decides: Cat by component name, Dog by mapping.
    assert!(request(V3_0, s, json!({"kind": "Cat", "purrs": true})).is_empty());
    assert!(request(V3_0, s, json!({"kind": "bird"}))
        .iter()
        .any(|v| v.ends_with("enum")));
    let strict = |i| check(V3_0, s, Direction::Request, true, i);
    assert!(strict(json!({"kind": "dog", "barks": true})).is_empty());
    assert!(!strict(json!({"kind": "dog", "purrs": true})).is_empty());
}

#[test]
fn strict_mode_closes_declared_objects_only() {
    let strict = |s: &str, i| check(V3_0, s, Direction::Request, true, i);
    let pet = r##"{"$ref": "#/components/schemas/Pet"}"##;
    assert_eq!(
        strict(pet, json!({"name": "a", "admin": true})),
        ["/admin unevaluatedProperties"]
    );
    assert!(
        request(V3_0, pet, json!({"name": "a", "admin": true})).is_empty(),
        "open without strict"
    );
    let nested =
        r##"{"type": "object", "properties": {"pet": {"$ref": "#/components/schemas/Pet"}}}"##;
    assert_eq!(
        strict(nested, json!({"pet": {"name": "a", "x": 1}})),
        ["/pet/x unevaluatedProperties"]
    );
    let composed = r##"{"allOf": [{"$ref": "#/components/schemas/Pet"}, {"type": "object", "properties": {"tag": {"type": "string"}}}]}"##;
    assert!(
        strict(composed, json!({"name": "a", "tag": "t"})).is_empty(),
        "allOf siblings evaluate each other's properties"
    );
    assert_eq!(
        strict(composed, json!({"name": "a", "x": 1})),
        ["/x unevaluatedProperties"]
    );
    for open in [
        r##"{"$ref": "#/components/schemas/Free"}"##,
        r##"{"$ref": "#/components/schemas/Open"}"##,
        r#"{"type": "object"}"#,
    ] {
        assert!(strict(open, json!({"anything": 1})).is_empty(), "{open}");
    }
}

#[test]
fn reasons_and_pointers_never_carry_the_instance() {
    let s = r#"{"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}}"#;
    let set = set(V3_1);
    let violations = schema(s, Direction::Request, true).validate(
        &set,
        &json!({"n": 99_999, "<script>alert(1)</script>": "x"}),
    );
    let text = format!("{violations:?}");
    assert!(
        !text.contains("99999") && !text.contains("<script>"),
        "{text}"
    );
    assert!(text.contains("must be at most 3"), "{text}");
    assert!(text.contains("/_script_alert_1__~1script_"), "{text}");
}

#[test]
fn violations_are_bounded() {
    let s = r#"{"type": "array", "items": {"type": "integer"}}"#;
    let many: Vec<Value> = (0..100).map(|i| json!(format!("{i}"))).collect();
    assert_eq!(request(V3_1, s, Value::Array(many)).len(), MAX_VIOLATIONS);
}

#[test]
fn bad_references_fail_to_compile_with_their_pointer() {
    let set = set(V3_0);
    for (text, needle) in [
        (
            r##"{"$ref": "#/components/schemas/Nope"}"##,
            "does not exist",
        ),
        (r#"{"$ref": "other.yaml#/Pet"}"#, "only references"),
        (r#"{"type": "string", "pattern": "("}"#, "does not compile"),
    ] {
        let e = schema(text, Direction::Request, false)
            .compile(&set)
            .unwrap_err();
        assert_eq!(e.location().unwrap().pointer, "/test");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn identical_schemas_share_one_validator() {
    let set = set(V3_0);
    let text = r#"{"type": "object", "properties": {"id": {"type": "integer"}}}"#;
    let compile = |text, direction, strict| {
        let schema = schema(text, direction, strict);
        std::ptr::from_ref(schema.compile(&set).unwrap())
    };
    let first = compile(text, Direction::Request, false);
    assert_eq!(compile(text, Direction::Request, false), first);
    let documented = r#"{"type": "object", "title": "A thing", "x-internal": true,
        "properties": {"id": {"type": "integer", "description": "Its id", "example": 7}}}"#;
    assert_eq!(
        compile(documented, Direction::Request, false),
        first,
        "annotations are dropped in translation"
    );
    assert_ne!(
        compile(text, Direction::Request, true),
        first,
        "strict mode translates differently"
    );
}

#[test]
fn shapes_look_through_references() {
    let set = set(V3_0);
    let shape = |t: &str| set.shape(&RawValue::from_string(t.to_owned()).unwrap());
    assert_eq!(
        shape(r#"{"type": "integer"}"#),
        Shape::Scalar(Types::INTEGER)
    );
    assert_eq!(
        shape(r#"{"type": "array", "items": {"type": "number"}}"#),
        Shape::Array {
            items: Types::NUMBER,
            scalar: Types::default()
        }
    );
    assert_eq!(
        shape(r##"{"$ref": "#/components/schemas/Cat"}"##),
        Shape::Object {
            properties: [
                ("kind".to_owned(), Types::STRING),
                ("purrs".to_owned(), Types::BOOLEAN)
            ]
            .into(),
            additional: Types::ANY
        }
    );
    assert_eq!(
        shape(
            r#"{"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}"#
        ),
        Shape::Array {
            items: Types::INTEGER,
            scalar: Types::STRING
        }
    );
    assert_eq!(
        shape(r#"{"type": "string", "nullable": true}"#),
        Shape::Scalar(Types::STRING.union(Types::NULL))
    );
}

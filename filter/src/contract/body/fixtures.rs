//! What the body parsers' tests share: a form spec and JSON limits small enough to reach.

use std::collections::BTreeMap;

use super::{FieldShape, FormSpec, JsonCaps, JsonLimits};
use crate::contract::shape::Types;

pub(super) fn spec() -> FormSpec {
    FormSpec {
        fields: BTreeMap::from([
            ("age".to_owned(), FieldShape::Scalar(Types::INTEGER)),
            ("name".to_owned(), FieldShape::Scalar(Types::STRING)),
            ("tags".to_owned(), FieldShape::Array(Types::STRING)),
            ("ids".to_owned(), FieldShape::Array(Types::INTEGER)),
            ("meta".to_owned(), FieldShape::Scalar(Types::OBJECT)),
            ("photo".to_owned(), FieldShape::Scalar(Types::STRING)),
        ]),
        additional: Types::ANY,
    }
}

pub(super) const LIMITS: JsonLimits = JsonLimits { max_depth: 4 };
pub(super) const CAPS: JsonCaps = JsonCaps {
    max_members: 3,
    max_containers: 8,
};
pub(super) const MAX_PARTS: usize = 20;

/// Joins lines with CRLF, as a browser sends them.
pub(super) fn crlf(lines: &[&str]) -> Vec<u8> {
    lines.join("\r\n").into_bytes()
}

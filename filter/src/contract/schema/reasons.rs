//! What a violation says: the keyword that failed and a reason built from the schema
//! (trusted), never from the instance (attacker input).

use jsonschema::error::ValidationErrorKind;

use crate::verdict::sanitize;

pub(super) fn keyword(kind: &ValidationErrorKind) -> &'static str {
    match kind {
        ValidationErrorKind::FalseSchema => "false",
        ValidationErrorKind::Type { .. } => "type",
        ValidationErrorKind::Required { .. } => "required",
        ValidationErrorKind::Enum { .. } => "enum",
        ValidationErrorKind::Constant { .. } => "const",
        ValidationErrorKind::Format { .. } => "format",
        ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. } => "pattern",
        ValidationErrorKind::Minimum { .. } => "minimum",
        ValidationErrorKind::Maximum { .. } => "maximum",
        ValidationErrorKind::ExclusiveMinimum { .. } => "exclusiveMinimum",
        ValidationErrorKind::ExclusiveMaximum { .. } => "exclusiveMaximum",
        ValidationErrorKind::MinLength { .. } => "minLength",
        ValidationErrorKind::MaxLength { .. } => "maxLength",
        ValidationErrorKind::MinItems { .. } => "minItems",
        ValidationErrorKind::MaxItems { .. } => "maxItems",
        ValidationErrorKind::UniqueItems => "uniqueItems",
        ValidationErrorKind::MinProperties { .. } => "minProperties",
        ValidationErrorKind::MaxProperties { .. } => "maxProperties",
        ValidationErrorKind::MultipleOf { .. } => "multipleOf",
        ValidationErrorKind::OneOfMultipleValid { .. }
        | ValidationErrorKind::OneOfNotValid { .. } => "oneOf",
        ValidationErrorKind::AnyOf { .. } => "anyOf",
        ValidationErrorKind::Not { .. } => "not",
        _ => "schema",
    }
}

/// A reason built from the schema side of an error only.
pub(super) fn reason(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::FalseSchema => "must not be present".to_owned(),
        ValidationErrorKind::Type { kind } => format!("must be of type {}", type_names(kind)),
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("required property `{}` is missing", sanitize(name)),
            None => "a required property is missing".to_owned(),
        },
        ValidationErrorKind::Enum { .. } => "must be one of the declared values".to_owned(),
        ValidationErrorKind::Constant { .. } => "must be the declared constant".to_owned(),
        ValidationErrorKind::Format { format } => format!("must be a valid `{format}`"),
        ValidationErrorKind::Pattern { pattern } => format!("must match the pattern `{pattern}`"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::UniqueItems => "items must be unique".to_owned(),
        ValidationErrorKind::MinProperties { limit } => {
            format!("must have at least {limit} properties")
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!("must have at most {limit} properties")
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("must be a multiple of {multiple_of}")
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the declared alternatives".to_owned()
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            "matches none of the declared alternatives".to_owned()
        }
        ValidationErrorKind::Not { .. } => "matches a schema it must not match".to_owned(),
        other => format!("violates `{}`", other.keyword()),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

//! The SQL form of a flat scalar JSON filter (spec §6.4): thread metadata, item values and
//! the part of a checkpoint metadata filter SQLite can decide. Its own module so the stores
//! using it depend on it, not on each other.

use waymark_domain::{JsonObject, JsonValue};

use super::db::{Kind, Sql, int, text};

/// Appends the SQL form of a flat scalar metadata filter (spec §6.4) on `col`.
pub(crate) fn push_scalar_filter(q: &mut Sql, kind: Kind, col: &str, conditions: &JsonObject) {
    if conditions.is_empty() {
        return;
    }
    match kind {
        Kind::Postgres => {
            // Containment of a flat object of scalars is exactly the scalar rule: numbers by
            // value, booleans apart from numbers, null only where stored.
            q.push(&format!(" AND {col} @> "))
                .val(kind.json(&JsonValue::Object(conditions.clone())));
        }
        Kind::Sqlite => {
            for (k, v) in conditions {
                let path = q.bind(text(format!("$.\"{k}\"")));
                match v {
                    JsonValue::Null => {
                        q.push(&format!(" AND json_type({col}, {path}) = 'null'"));
                    }
                    JsonValue::Bool(b) => {
                        q.push(&format!(" AND json_type({col}, {path}) = '{b}'"));
                    }
                    JsonValue::Number(n) => {
                        q.push(&format!(
                            " AND json_type({col}, {path}) IN ('integer', 'real') AND json_extract({col}, {path}) = "
                        ));
                        match n.as_i64() {
                            Some(i) => q.val(int(i)),
                            None => q.val(sea_orm::Value::Double(n.as_f64())),
                        };
                    }
                    JsonValue::String(s) => {
                        q.push(&format!(
                            " AND json_type({col}, {path}) = 'text' AND json_extract({col}, {path}) = "
                        ))
                        .val(text(s.clone()));
                    }
                    // Non-scalar values are refused by `ThreadFilter::parse`; match nothing.
                    JsonValue::Array(_) | JsonValue::Object(_) => {
                        q.push(" AND 1 = 0");
                    }
                }
            }
        }
    }
}

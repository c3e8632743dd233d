//! The plan rules every resource follows, implemented once: computed attributes the configuration
//! leaves null become unknown when the resource is created or changed (or keep their prior value
//! when marked stable), and changed force-new attributes require replacement. Destroy plans stay
//! null; the server never asks a resource to plan a destroy.

use super::diagnostics::AttributePath;
use super::schema::{Block, Nesting};
use super::value::Value;

/// The generic plan for a create (`prior` null) or an update, starting from Terraform's proposed
/// new state. When nothing changed, the proposal is returned as is (a no-op plan).
pub fn plan_change(block: &Block, prior: &Value, proposed: &Value, config: &Value) -> Value {
    let mut planned = proposed.clone();
    if prior.is_null() || proposed != prior {
        mark_computed_unknown(block, prior, config, &mut planned);
    }
    planned
}

/// Sets every computed attribute whose configuration is null to unknown (or, for attributes marked
/// stable, to its prior value), recursing into list blocks element by element.
fn mark_computed_unknown(block: &Block, prior: &Value, config: &Value, planned: &mut Value) {
    let Some(map) = planned.as_map_mut() else {
        return;
    };
    for attr in block.attributes.iter().filter(|a| a.mode.is_computed()) {
        if !config.attr(attr.name).is_null() {
            continue;
        }
        let prior_value = prior.attr(attr.name);
        let value = if attr.stable && !prior_value.is_null() {
            prior_value.clone()
        } else {
            Value::unknown()
        };
        map.insert(attr.name.to_owned(), value);
    }
    for nested in block.blocks.iter().filter(|b| b.nesting == Nesting::List) {
        let configs = match config.attr(nested.type_name) {
            Value::List(items) => items.clone(),
            _ => continue,
        };
        let priors = match prior.attr(nested.type_name) {
            Value::List(items) => items.clone(),
            _ => Vec::new(),
        };
        if let Some(Value::List(items)) = map.get_mut(nested.type_name) {
            for (i, item) in items.iter_mut().enumerate() {
                let item_prior = priors.get(i).unwrap_or(&Value::Null);
                let item_config = configs.get(i).unwrap_or(&Value::Null);
                mark_computed_unknown(&nested.block, item_prior, item_config, item);
            }
        }
    }
}

/// The force-new attributes whose planned value differs from the prior one. Empty on create.
pub fn requires_replace(block: &Block, prior: &Value, planned: &Value) -> Vec<AttributePath> {
    if prior.is_null() || planned.is_null() {
        return Vec::new();
    }
    block
        .attributes
        .iter()
        .filter(|a| a.force_new && prior.attr(a.name) != planned.attr(a.name))
        .map(|a| AttributePath::root().attr(a.name))
        .collect()
}

/// Every path whose change requires replacement: the changed force-new attributes plus the
/// resource's own `extra` reasons (ignored on create), sorted and without repeats.
pub fn replace_paths(
    block: &Block,
    prior: &Value,
    planned: &Value,
    extra: Vec<AttributePath>,
) -> Vec<AttributePath> {
    let mut paths = requires_replace(block, prior, planned);
    if !prior.is_null() {
        paths.extend(extra);
    }
    // Sorted first: dedup only drops adjacent repeats.
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::schema::{Attribute, Mode, Type};

    fn block() -> Block {
        Block::new("r")
            .attribute(Attribute::new("name", Type::String, Mode::Required, "n").force_new())
            .attribute(Attribute::new("note", Type::String, Mode::Optional, "d"))
            .attribute(Attribute::new("id", Type::String, Mode::Computed, "i").stable())
            .attribute(Attribute::new("stamp", Type::String, Mode::Computed, "s"))
            .attribute(Attribute::new(
                "size",
                Type::String,
                Mode::OptionalComputed,
                "z",
            ))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())))
    }

    #[test]
    fn create_marks_computed_nulls_unknown() {
        let config = obj(&[
            ("name", Value::string("a")),
            ("note", Value::Null),
            ("id", Value::Null),
            ("stamp", Value::Null),
            ("size", Value::string("big")),
        ]);
        let planned = plan_change(&block(), &Value::Null, &config, &config);
        assert!(planned.attr("id").is_unknown());
        assert!(planned.attr("stamp").is_unknown());
        assert_eq!(
            planned.attr("size"),
            &Value::string("big"),
            "configured value kept"
        );
        assert!(
            planned.attr("note").is_null(),
            "optional non-computed stays null"
        );
        assert!(requires_replace(&block(), &Value::Null, &planned).is_empty());
    }

    #[test]
    fn unchanged_update_is_a_no_op() {
        let prior = obj(&[
            ("name", Value::string("a")),
            ("note", Value::Null),
            ("id", Value::string("x")),
            ("stamp", Value::string("t")),
            ("size", Value::string("s")),
        ]);
        let config = obj(&[
            ("name", Value::string("a")),
            ("note", Value::Null),
            ("id", Value::Null),
            ("stamp", Value::Null),
            ("size", Value::Null),
        ]);
        let planned = plan_change(&block(), &prior, &prior, &config);
        assert_eq!(planned, prior);
    }

    #[test]
    fn changed_update_keeps_stable_and_recomputes_the_rest() {
        let prior = obj(&[
            ("name", Value::string("a")),
            ("note", Value::Null),
            ("id", Value::string("x")),
            ("stamp", Value::string("t")),
            ("size", Value::string("s")),
        ]);
        let mut proposed = prior.clone();
        proposed
            .as_map_mut()
            .map(|m| m.insert("note".into(), Value::string("new")));
        let config = obj(&[
            ("name", Value::string("a")),
            ("note", Value::string("new")),
            ("id", Value::Null),
            ("stamp", Value::Null),
            ("size", Value::Null),
        ]);
        let planned = plan_change(&block(), &prior, &proposed, &config);
        assert_eq!(planned.attr("id"), &Value::string("x"));
        assert!(planned.attr("stamp").is_unknown());
        assert!(planned.attr("size").is_unknown());
        assert!(requires_replace(&block(), &prior, &planned).is_empty());
    }

    #[test]
    fn force_new_change_requires_replace() {
        let prior = obj(&[("name", Value::string("a")), ("note", Value::Null)]);
        let planned = obj(&[("name", Value::string("b")), ("note", Value::Null)]);
        let paths = requires_replace(&block(), &prior, &planned);
        assert_eq!(paths, vec![AttributePath::root().attr("name")]);
        assert!(
            requires_replace(&block(), &prior, &Value::Null).is_empty(),
            "destroy"
        );
    }

    #[test]
    fn replace_paths_are_sorted_and_unique() {
        let prior = obj(&[("name", Value::string("a")), ("note", Value::Null)]);
        let planned = obj(&[("name", Value::string("b")), ("note", Value::Null)]);
        let name = AttributePath::of("name");
        let note = AttributePath::of("note");
        // "name" comes from the force-new rule and twice more from the resource, not adjacent.
        let extra = vec![name.clone(), note.clone(), name.clone()];
        assert_eq!(
            replace_paths(&block(), &prior, &planned, extra.clone()),
            vec![name, note]
        );
        assert!(
            replace_paths(&block(), &Value::Null, &planned, extra).is_empty(),
            "create"
        );
    }
}

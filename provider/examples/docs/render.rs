//! The Registry documentation, generated: `docs/index.md`, one page per data source and resource,
//! built from the schema descriptions (the single source of truth) and the files under
//! `examples/`, plus the hand-written guides under `templates/guides/`, copied as they are.
//!
//! `scripts/docs` writes the pages; a test (`cargo test`, in `main.rs`) renders them again and
//! fails when `docs/` is stale. Not part of the provider library: nothing here ships.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use terraform_provider_allowlist::tfplugin::schema::{Attribute, Block, Mode, Nesting, Type};
use terraform_provider_allowlist::tfplugin::Provider;

/// The provider's name in page titles and resource type prefixes.
const PROVIDER: &str = "allowlist";

/// One generated file: its path under the repository root, and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub path: PathBuf,
    pub content: String,
}

/// Why the docs could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Renders every page from the provider's schemas and the repository at `root`.
pub fn render(provider: &dyn Provider, root: &Path) -> Result<Vec<Page>, DocsError> {
    let mut pages = Vec::new();
    let schema = provider.schema();
    let mut index = front_matter(
        &format!("{PROVIDER} Provider"),
        "",
        first_sentence(schema.block.description),
    );
    let _ = write!(
        index,
        "# {PROVIDER} Provider\n\n{}\n\n## Example Usage\n\n{}\n",
        schema.block.description,
        terraform_block(&read(root, "examples/provider/provider.tf")?)
    );
    index.push_str(&schema_section(&schema.block));
    pages.push(Page {
        path: PathBuf::from("docs/index.md"),
        content: index,
    });

    for ds in provider.data_sources() {
        let name = ds.type_name();
        let example = read(
            root,
            &format!("examples/data-sources/{name}/data-source.tf"),
        )?;
        pages.push(entity_page(
            "Data Source",
            "data-sources",
            name,
            &ds.schema().block,
            &example,
            None,
        ));
    }
    for resource in provider.resources() {
        let name = resource.type_name();
        let example = read(root, &format!("examples/resources/{name}/resource.tf"))?;
        let import = read(root, &format!("examples/resources/{name}/import.sh"))?;
        pages.push(entity_page(
            "Resource",
            "resources",
            name,
            &resource.schema().block,
            &example,
            Some(&import),
        ));
    }
    for ephemeral in provider.ephemeral_resources() {
        let name = ephemeral.type_name();
        let example = read(
            root,
            &format!("examples/ephemeral-resources/{name}/ephemeral-resource.tf"),
        )?;
        pages.push(entity_page(
            "Ephemeral Resource",
            "ephemeral-resources",
            name,
            &ephemeral.schema().block,
            &example,
            None,
        ));
    }

    let guides = root.join("templates/guides");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&guides)
        .map_err(|source| DocsError::Read {
            path: guides.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    names.sort();
    for path in names {
        let Some(file) = path.file_name() else {
            continue;
        };
        let relative = Path::new("templates/guides").join(file);
        pages.push(Page {
            path: Path::new("docs/guides").join(file),
            content: read(root, &relative.to_string_lossy())?,
        });
    }
    Ok(pages)
}

fn read(root: &Path, relative: &str) -> Result<String, DocsError> {
    std::fs::read_to_string(root.join(relative)).map_err(|source| DocsError::Read {
        path: relative.to_owned(),
        source,
    })
}

fn entity_page(
    kind: &str,
    dir: &str,
    name: &str,
    block: &Block,
    example: &str,
    import: Option<&str>,
) -> Page {
    let short = name.strip_prefix(&format!("{PROVIDER}_")).unwrap_or(name);
    let mut page = front_matter(
        &format!("{name} {kind} - {PROVIDER}"),
        "",
        first_sentence(block.description),
    );
    let _ = write!(
        page,
        "# {name} ({kind})\n\n{}\n\n## Example Usage\n\n{}\n",
        block.description,
        terraform_block(example)
    );
    page.push_str(&schema_section(block));
    if let Some(import) = import {
        let _ = write!(
            page,
            "\n## Import\n\nImport is supported using the following syntax:\n\n```shell\n{}\n```\n",
            import.trim_end()
        );
    }
    Page {
        path: PathBuf::from(format!("docs/{dir}/{short}.md")),
        content: page,
    }
}

fn front_matter(title: &str, subcategory: &str, description: &str) -> String {
    let mut out = format!("---\npage_title: \"{title}\"\nsubcategory: \"{subcategory}\"\n");
    out.push_str("description: |-\n");
    for line in wrap(description, 96) {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("---\n\n");
    out
}

fn terraform_block(code: &str) -> String {
    format!("```terraform\n{}\n```\n", code.trim_end())
}

/// The schema of a block: its attributes by mode, then its nested blocks, each with their own
/// section (linked by anchor, as the Registry's pages do).
fn schema_section(block: &Block) -> String {
    let mut out = String::from(
        "<!-- Generated from the provider's schema by scripts/docs; edit the descriptions in the source. -->\n## Schema\n",
    );
    let mut nested = Vec::new();
    write_block(&mut out, block, "", 3, &mut nested);
    while !nested.is_empty() {
        let (path, kind, body) = nested.remove(0);
        let _ = write!(
            out,
            "\n<a id=\"{}\"></a>\n### Nested Schema for `{path}`\n",
            anchor(&kind, &path)
        );
        out.push_str(&body);
    }
    out
}

/// A nested section still to write: its path, its kind (`nestedblock`/`nestedatt`) and its body.
type Pending = (String, String, String);

/// One attribute's line (`- `name` (Type, facts) description`); an object type also queues its
/// fields as a nested section.
fn attribute_line(attr: &Attribute, prefix: &str, nested: &mut Vec<Pending>) -> String {
    let path = format!("{prefix}{}", attr.name);
    let mut facts = vec![type_name(&attr.ty)];
    if attr.sensitive {
        facts.push("Sensitive".to_owned());
    }
    if attr.force_new {
        facts.push("Forces replacement".to_owned());
    }
    let mut line = format!(
        "- `{}` ({}) {}",
        attr.name,
        facts.join(", "),
        attr.description
    );
    if let Some(fields) = object_fields(&attr.ty) {
        let _ = write!(
            line,
            " (see [below for nested schema](#{}))",
            anchor("nestedatt", &path)
        );
        let mut body = String::from("\nRead-Only:\n\n");
        for (field, ty) in fields {
            let _ = writeln!(body, "- `{field}` ({})", type_name(ty));
        }
        nested.push((path, "nestedatt".to_owned(), body));
    }
    line
}

fn write_block(
    out: &mut String,
    block: &Block,
    prefix: &str,
    level: usize,
    nested: &mut Vec<Pending>,
) {
    let heading = "#".repeat(level);
    let groups = [
        ("Required", &[Mode::Required][..]),
        ("Optional", &[Mode::Optional, Mode::OptionalComputed][..]),
        ("Read-Only", &[Mode::Computed][..]),
    ];
    for (title, modes) in groups {
        let attrs: Vec<&Attribute> = block
            .attributes
            .iter()
            .filter(|a| modes.contains(&a.mode))
            .collect();
        let blocks: Vec<_> = if title == "Optional" {
            block.blocks.iter().collect()
        } else {
            Vec::new()
        };
        if attrs.is_empty() && blocks.is_empty() {
            continue;
        }
        if level == 3 {
            let _ = write!(out, "\n{heading} {title}\n\n");
        } else {
            let _ = write!(out, "\n{title}:\n\n");
        }
        let mut items: Vec<(String, String)> = Vec::new();
        for attr in attrs {
            items.push((attr.name.to_owned(), attribute_line(attr, prefix, nested)));
        }
        for child in blocks {
            let path = format!("{prefix}{}", child.type_name);
            let kind = match child.nesting {
                Nesting::List => "Block List",
                Nesting::Set => "Block Set",
            };
            let line = format!(
                "- `{}` ({kind}) {} (see [below for nested schema](#{}))",
                child.type_name,
                child.description,
                anchor("nestedblock", &path)
            );
            let mut body = String::new();
            write_block(&mut body, &child.block, &format!("{path}."), 4, nested);
            nested.push((path, "nestedblock".to_owned(), body));
            items.push((child.type_name.to_owned(), line));
        }
        items.sort();
        for (_, line) in items {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn anchor(kind: &str, path: &str) -> String {
    format!("{kind}--{}", path.replace('.', "--"))
}

fn object_fields(ty: &Type) -> Option<Vec<(&String, &Type)>> {
    match ty {
        Type::List(t) | Type::Set(t) => object_fields(t),
        Type::Object(fields) => Some(fields.iter().collect()),
        _ => None,
    }
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::String => "String".into(),
        Type::Number => "Number".into(),
        Type::Bool => "Boolean".into(),
        Type::List(t) => format!("List of {}", type_name(t)),
        Type::Set(t) => format!("Set of {}", type_name(t)),
        Type::Map(t) => format!("Map of {}", type_name(t)),
        Type::Object(_) => "Object".into(),
    }
}

fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(i) => &text[..=i],
        None => text,
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_like_the_registry() {
        assert_eq!(type_name(&Type::list(Type::String)), "List of String");
        assert_eq!(type_name(&Type::map(Type::String)), "Map of String");
        assert_eq!(
            type_name(&Type::list(Type::object([("id", Type::String)]))),
            "List of Object"
        );
        assert_eq!(
            anchor("nestedblock", "filter.values"),
            "nestedblock--filter--values"
        );
    }

    #[test]
    fn attributes_are_grouped_by_who_sets_them() {
        let block = Block::new("A thing.")
            .attribute(
                Attribute::new("zone", Type::String, Mode::Required, "The zone.").force_new(),
            )
            .attribute(Attribute::new(
                "id",
                Type::String,
                Mode::Computed,
                "The id.",
            ))
            .attribute(Attribute::new(
                "ttl",
                Type::String,
                Mode::Optional,
                "How long.",
            ))
            .block(
                "rule",
                Nesting::List,
                Block::new("A rule.").attribute(Attribute::new(
                    "port",
                    Type::Number,
                    Mode::Required,
                    "The port.",
                )),
            );
        let out = schema_section(&block);
        let required = out.find("### Required").unwrap();
        let optional = out.find("### Optional").unwrap();
        let read_only = out.find("### Read-Only").unwrap();
        assert!(required < optional && optional < read_only, "{out}");
        assert!(
            out.contains("- `zone` (String, Forces replacement) The zone."),
            "{out}"
        );
        assert!(
            out.contains(
                "- `rule` (Block List) A rule. (see [below for nested schema](#nestedblock--rule))"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "### Nested Schema for `rule`\n\nRequired:\n\n- `port` (Number) The port."
            ),
            "{out}"
        );
    }
}

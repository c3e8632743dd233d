//! Writes the Registry documentation under `docs/` from the provider's schemas and `examples/`
//! (run it through `scripts/docs`). With `--check` it writes nothing and exits 1 when `docs/` is
//! stale, listing the pages that differ. `cargo test` runs the same check as a test.

mod render;

use allowlist_core::clock::SystemClock;
use render as docs;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use terraform_provider_allowlist::provider::AllowlistProvider;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let provider = AllowlistProvider::new(Arc::new(SystemClock::new()));
    let pages = match docs::render(&provider, &root) {
        Ok(pages) => pages,
        Err(err) => {
            eprintln!("docs: {err}");
            return ExitCode::from(1);
        }
    };
    let mut stale = Vec::new();
    for page in &pages {
        let path = root.join(&page.path);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(page.content.as_str()) {
            continue;
        }
        stale.push(page.path.display().to_string());
        if !check {
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, &page.content));
            if let Err(err) = written {
                eprintln!("docs: cannot write {}: {err}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    match (check, stale.is_empty()) {
        (_, true) => {
            eprintln!("docs: {} pages up to date", pages.len());
            ExitCode::SUCCESS
        }
        (true, false) => {
            eprintln!("docs: stale, run scripts/docs: {}", stale.join(", "));
            ExitCode::from(1)
        }
        (false, false) => {
            eprintln!("docs: wrote {}", stale.join(", "));
            ExitCode::SUCCESS
        }
    }
}

/// docs/ is generated (scripts/docs); this test fails when it is stale or holds pages the
/// generator does not make, so the Registry docs always match the schema.
#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn files_under(dir: &Path, root: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("docs/ exists") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                files_under(&path, root, out);
            } else {
                out.insert(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }

    #[test]
    fn docs_are_up_to_date() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let provider = AllowlistProvider::new(Arc::new(SystemClock::new()));
        let pages = docs::render(&provider, &root).expect("docs render");
        let mut stale = Vec::new();
        for page in &pages {
            let on_disk = std::fs::read_to_string(root.join(&page.path)).unwrap_or_default();
            if on_disk != page.content {
                stale.push(page.path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "docs/ is stale; run scripts/docs. Differs: {stale:?}"
        );

        let generated: BTreeSet<PathBuf> = pages.iter().map(|p| p.path.clone()).collect();
        let mut present = BTreeSet::new();
        files_under(&root.join("docs"), &root, &mut present);
        let extra: Vec<_> = present.difference(&generated).collect();
        assert!(
            extra.is_empty(),
            "docs/ holds pages the generator does not make: {extra:?}"
        );

        // Every entity page has an example and its whole schema; the resource has import.
        for page in pages.iter().filter(|p| !p.path.starts_with("docs/guides")) {
            assert!(
                page.content.contains("## Example Usage\n\n```terraform\n"),
                "{:?}",
                page.path
            );
            assert!(page.content.contains("## Schema"), "{:?}", page.path);
        }
        let resource = pages
            .iter()
            .find(|p| p.path.ends_with("resources/temporary_ingress.md"))
            .expect("resource page");
        assert!(resource.content.contains("## Import"));
        assert!(resource
            .content
            .contains("terraform import allowlist_temporary_ingress."));
    }
}

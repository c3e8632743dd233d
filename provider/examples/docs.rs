//! Writes the Registry documentation under `docs/` from the provider's schemas and `examples/`
//! (run it through `scripts/docs`). With `--check` it writes nothing and exits 1 when `docs/` is
//! stale, listing the pages that differ.

use allowlist_core::clock::SystemClock;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use terraform_provider_allowlist::docs;
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

//! `apiguard`: the policy tool. Checks a policy without Envoy, and bundles it into the
//! plugin configuration Envoy loads.
//!
//! ```text
//! apiguard check  POLICY.yaml...   compile each policy; report errors with their place
//! apiguard bundle POLICY.yaml      print the plugin configuration (JSON, document inlined)
//! ```

use std::path::Path;
use std::process::ExitCode;

use apiguard_filter::{bundle, load_bundle};

const USAGE: &str = "usage: apiguard check POLICY.yaml...\n       apiguard bundle POLICY.yaml";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((command, files)) if command == "check" && !files.is_empty() => check(files),
        Some((command, [file])) if command == "bundle" => print_bundle(Path::new(file)),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn check(files: &[String]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in files {
        // Lazy or not, every schema is compiled here, before deployment.
        let checked = bundle(Path::new(file))
            .and_then(|(_, policy)| policy.compile_schemas().map(|()| policy));
        match checked {
            Ok(policy) => {
                for scheme in policy.unconfigured_schemes() {
                    eprintln!(
                        "warning: {file}: security scheme `{scheme}` is declared but not \
                         configured; no operation uses it"
                    );
                }
                println!(
                    "{file}: ok: API `{}`, {} path templates, mode {:?}",
                    policy.name(),
                    policy.templates(),
                    policy.mode()
                )
            }
            Err(e) => {
                eprintln!("error: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

fn print_bundle(file: &Path) -> ExitCode {
    match load_bundle(file) {
        Ok(bundle) => {
            println!("{bundle}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

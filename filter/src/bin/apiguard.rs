//! `apiguard`: the policy tool. Checks a policy without Envoy, bundles it into the plugin
//! configuration Envoy loads, and explains what it does with a request.
//!
//! ```text
//! apiguard check   POLICY.yaml...   compile each policy; report errors with their place
//! apiguard bundle  POLICY.yaml      print the plugin configuration (JSON, document inlined)
//! apiguard explain POLICY.yaml 'METHOD /target' [-H 'name: value']... [-d BODY]
//!                                   the verdict on one request, run through the filter's
//!                                   own pipeline, with every rule it hit and the operation
//!                                   (and its place in the document) that decided it
//! apiguard diff    OLD NEW [--json] what changed for clients between two policies or
//!                                   OpenAPI documents; exits 1 when a change is breaking
//! apiguard render envoy|ecds|istio POLICY.yaml [--wasm PATH|URL] [--namespace NS]
//!                                   what to deploy, as YAML: the HTTP filters for
//!                                   envoy.yaml, the ECDS resource (hot reload), or the
//!                                   Istio WasmPlugin and EnvoyFilter
//! apiguard learn   OPENAPI EVENTS...  an OpenAPI Overlay of the shadow endpoints the
//!                                   discovery events report (stdout), and a report of
//!                                   zombies and readiness to enforce (stderr)
//! apiguard overlay apply OPENAPI OVERLAY
//!                                   the document with the overlay applied (stdout)
//! ```

// Beside the binary's root, in its own folder: a file directly in `src/bin/` would be
// taken by Cargo for another binary.
#[path = "apiguard/drift.rs"]
mod drift;
#[path = "apiguard/learn.rs"]
mod learn;
#[path = "apiguard/overlay.rs"]
mod overlay;

use std::path::Path;
use std::process::ExitCode;

use std::rc::Rc;

use apiguard_filter::render;
use apiguard_filter::{
    bundle, diff, load_bundle, load_contract, Exchange, MemoryStore, Next, Policy, SlotSecret,
    Values,
};

const USAGE: &str =
    "usage: apiguard check POLICY.yaml...\n       apiguard bundle POLICY.yaml\n       \
                     apiguard explain POLICY.yaml 'METHOD /target' [-H 'name: value']... [-d BODY]\n       \
                     apiguard diff OLD NEW [--json]   (policies or OpenAPI documents)\n       \
                     apiguard render envoy|ecds|istio POLICY.yaml [--wasm PATH|URL] [--namespace NS]\n       \
                     apiguard learn OPENAPI EVENTS...\n       \
                     apiguard overlay apply OPENAPI OVERLAY";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((command, files)) if command == "check" && !files.is_empty() => check(files),
        Some((command, [file])) if command == "bundle" => print_bundle(Path::new(file)),
        Some((command, [file, request, options @ ..])) if command == "explain" => {
            explain(Path::new(file), request, options)
        }
        Some((command, [old, new, options @ ..])) if command == "diff" => match options {
            [] => compare(Path::new(old), Path::new(new), false),
            [flag] if flag == "--json" => compare(Path::new(old), Path::new(new), true),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        },
        Some((command, [kind, file, options @ ..])) if command == "render" => {
            print_render(kind, Path::new(file), options)
        }
        Some((command, [document, events @ ..])) if command == "learn" && !events.is_empty() => {
            learn(Path::new(document), events)
        }
        Some((command, [apply, document, overlay])) if command == "overlay" && apply == "apply" => {
            apply_overlay(Path::new(document), Path::new(overlay))
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Prints the overlay of the shadow endpoints in `events` (files of log or JSON lines)
/// against `document`, and the report on stderr.
fn learn(document: &Path, events: &[String]) -> ExitCode {
    let run = || -> Result<(), String> {
        let openapi = learn::read_document(document)?;
        let mut findings = learn::Findings::default();
        for file in events {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            findings.read(&text);
        }
        let source = document
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into());
        let overlay = learn::overlay(&openapi, &findings, &source);
        print!(
            "{}",
            serde_yaml::to_string(&overlay).map_err(|e| e.to_string())?
        );
        eprint!("{}", learn::report(&openapi, &findings));
        Ok(())
    };
    finish(run())
}

/// Prints `document` with `overlay` applied (YAML).
fn apply_overlay(document: &Path, overlay: &Path) -> ExitCode {
    let run = || -> Result<(), String> {
        let mut openapi = learn::read_document(document)?;
        overlay::apply(&mut openapi, &learn::read_document(overlay)?)?;
        print!(
            "{}",
            serde_yaml::to_string(&openapi).map_err(|e| e.to_string())?
        );
        Ok(())
    };
    finish(run())
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(files: &[String]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in files {
        // Lazy or not, every schema is compiled here, before deployment.
        let checked = bundle(Path::new(file)).and_then(|(_, gateway)| {
            (gateway.apis().iter())
                .try_for_each(|policy| policy.compile_schemas())
                .map(|()| gateway)
        });
        match checked {
            Ok(gateway) => {
                if gateway.is_listed() {
                    println!(
                        "{file}: ok: gateway `{}`, {} APIs, requests no API matches: {:?}",
                        gateway.name(),
                        gateway.apis().len(),
                        gateway.mode()
                    );
                }
                for policy in gateway.apis() {
                    for scheme in policy.unconfigured_schemes() {
                        eprintln!(
                            "warning: {file}: API `{}`: security scheme `{scheme}` is declared \
                             but not configured; no operation uses it",
                            policy.name()
                        );
                    }
                    let lead = match gateway.is_listed() {
                        true => "  ".to_owned(),
                        false => format!("{file}: ok: "),
                    };
                    println!(
                        "{lead}API `{}`, {} path templates, mode {:?}",
                        policy.name(),
                        policy.templates(),
                        policy.mode()
                    )
                }
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

/// Prints the deployment resources of `kind` for the policy: YAML that `envoy.yaml`, a
/// `path_config_source` or `kubectl apply` reads as it is.
fn print_render(kind: &str, file: &Path, options: &[String]) -> ExitCode {
    if !["envoy", "ecds", "istio"].contains(&kind) {
        eprintln!("error: render what: envoy, ecds or istio, not `{kind}`\n{USAGE}");
        return ExitCode::from(2);
    }
    let mut wasm = None;
    let mut namespace = None;
    for pair in options.chunks(2) {
        match pair {
            [flag, value] if flag == "--wasm" => wasm = Some(value.as_str()),
            [flag, value] if flag == "--namespace" => namespace = Some(value.as_str()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    // Only a policy that compiles (every schema too, as `check` does) is rendered: a
    // deployment never carries one the filter refuses.
    let checked = bundle(file).and_then(|(json, gateway)| {
        (gateway.apis().iter())
            .try_for_each(|policy| policy.compile_schemas())
            .map(|()| json)
    });
    let policy = match checked {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let documents = match kind {
        "envoy" => vec![render::envoy_filters(
            &policy,
            wasm.unwrap_or(render::WASM_PATH),
        )],
        "ecds" => vec![render::ecds_resource(
            &policy,
            wasm.unwrap_or(render::WASM_PATH),
        )],
        _ => {
            let name = policy["name"].as_str().unwrap_or(render::PLUGIN);
            let url = wasm.unwrap_or(render::OCI_PLACEHOLDER);
            render::istio(&policy, url, namespace.unwrap_or(name)).to_vec()
        }
    };
    let title = format!("apiguard render {kind} {}", file.display());
    match render::yaml(&title, &documents) {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Runs one request through the policy as Envoy would (one new client, the time now, no
/// token cache) and says what happened and why.
fn explain(file: &Path, request: &str, options: &[String]) -> ExitCode {
    let Some((method, target)) = request.split_once(' ') else {
        eprintln!("error: the request is `METHOD /target`, e.g. 'GET /v1/pets?limit=5'\n{USAGE}");
        return ExitCode::from(2);
    };
    let mut headers = vec![
        (":method".to_owned(), method.to_owned()),
        (":path".to_owned(), target.to_owned()),
    ];
    let mut body = None;
    for pair in options.chunks(2) {
        match pair {
            [flag, header] if flag == "-H" => match header.split_once(':') {
                Some((name, value)) => {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                }
                None => {
                    eprintln!("error: a header is `name: value`, not `{header}`");
                    return ExitCode::from(2);
                }
            },
            [flag, data] if flag == "-d" => body = Some(data.clone()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let gateway = match bundle(file) {
        Ok((_, gateway)) => gateway,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // A gateway's API is chosen as Envoy chooses it: by `-H 'host: …'` and the path.
    let chosen = gateway.select(&headers).and_then(|i| gateway.apis().get(i));
    let Some(policy) = chosen.map(Rc::clone) else {
        let unmatched = gateway.unmatched(&headers, now / 1_000_000, None);
        let rule = "route.unknown_api";
        println!("{method} {target}: {}", unmatched.action.as_str());
        match unmatched.reply {
            Some(reply) => println!("  answered {} by the filter ({rule})", reply.status),
            None => println!("  forwarded upstream ({rule}, recorded)"),
        }
        println!(
            "  no API of gateway `{}` has this host and path",
            gateway.name()
        );
        return ExitCode::SUCCESS;
    };
    if gateway.is_listed() {
        println!("API `{}`", policy.name());
    }
    let input = Values {
        now,
        downstream: Some("192.0.2.1:40000".to_owned()),
        store: MemoryStore::default(),
        secret: SlotSecret::new([0; SlotSecret::BYTES]),
    };
    let mut exchange = Exchange::new(Rc::clone(&policy), Rc::new(policy.key_ring()));
    let next = exchange.request(&input, &headers, body.as_deref().map(str::as_bytes));
    let outputs = exchange.take_outputs();
    let Some(state) = outputs.filter_state else {
        eprintln!("error: the request was not settled");
        return ExitCode::FAILURE;
    };
    println!("{method} {target}: {}", state.action.as_str());
    match &next {
        Next::Reply(reply) => println!(
            "  answered {} by the filter ({})",
            reply.status,
            state.rule.map_or("", |r| r.as_str())
        ),
        _ => println!("  forwarded upstream"),
    }
    if let Some(label) = &state.operation {
        let place = policy.operation_pointer(label).unwrap_or_default();
        println!("  operation {label}, declared at {place} in the OpenAPI document");
    }
    for event in &outputs.events {
        for finding in &event.violations {
            let at = [finding.location.as_deref(), finding.name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let action = serde_json::to_value(event.action).unwrap_or_default();
            let action = action.as_str().unwrap_or_default();
            let at = if at.is_empty() {
                String::new()
            } else {
                format!(" {at}")
            };
            println!("  {} [{action}]{at}: {}", finding.rule, finding.reason);
        }
    }
    ExitCode::SUCCESS
}

/// `apiguard diff`: exit status 0 when no change is breaking, 1 when one is (so CI can
/// stop a release on it), 2 when a file does not compile or the usage is wrong.
fn compare(old: &Path, new: &Path, json: bool) -> ExitCode {
    let load = |file: &Path| -> Result<Policy, ExitCode> {
        load_contract(file).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
    };
    let (old, new) = match (load(old), load(new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(status), _) | (_, Err(status)) => return status,
    };
    let changes = diff(&old, &new);
    if json {
        let report = serde_json::json!({
            "breaking": changes.breaking(),
            "changes": changes.changes,
        });
        println!("{report:#}");
    } else {
        println!("{changes}");
    }
    if changes.breaking() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

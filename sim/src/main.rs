//! `sim`: seeded traffic simulations that score apiguard's inference against a truth.
//!
//! ```text
//! sim discovery [--seed N] [--requests N] [--holes 0.1] [--names N]
//! ```
//! `discovery`: GitHub's API (from `make specs`) with a share of its paths cut out; a mix of
//! requests to every operation runs through the filter's pipeline, and the templates
//! discovery infers from the undeclared ones are scored: precision, recall, and whether
//! their parameters' forms agree with the schemas.

mod bodies;
mod discovery;
mod github;
mod rng;

use std::process::ExitCode;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: cannot read it ({source}); `make specs` fetches GitHub's description")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GitHub's description does not parse: {0}")]
    Spec(String),
    #[error("the simulated policy does not compile: {0}")]
    Policy(String),
    #[error("usage: sim discovery [--seed N] [--requests N] [--holes F] [--names N] ({0})")]
    Usage(String),
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), SimError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, options)) = args.split_first() else {
        return Err(SimError::Usage("no command".to_owned()));
    };
    if command != "discovery" {
        return Err(SimError::Usage(format!("unknown command `{command}`")));
    }
    let mut plan = discovery::Plan {
        seed: 1,
        requests: 200_000,
        holes: 0.1,
        names: 5_000,
    };
    for pair in options.chunks(2) {
        let [flag, value] = pair else {
            return Err(SimError::Usage(format!("`{}` needs a value", pair[0])));
        };
        let bad = || SimError::Usage(format!("`{flag} {value}`"));
        match flag.as_str() {
            "--seed" => plan.seed = value.parse().map_err(|_| bad())?,
            "--requests" => plan.requests = value.parse().map_err(|_| bad())?,
            "--holes" => plan.holes = value.parse().map_err(|_| bad())?,
            "--names" => plan.names = value.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        }
    }
    let document = github::load(&github::spec_path())?;
    let report = discovery::run(&document, plan)?;
    print!("{}", discovery::markdown(&plan, &report));
    Ok(())
}

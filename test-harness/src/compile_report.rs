//! The filter's compile report: after `on_configure` compiles the policy, each VM logs
//! "policy for API `…` compiled in N us, wasm memory M KiB: T path templates, …". The
//! benchmark publishes these figures (GitHub's API as a policy), so the line is parsed in
//! one place and an end-to-end test keeps the filter and the parser in step. So is the
//! line a `schemas: lazy` policy logs when its background compile is done.

/// One VM's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileReport {
    /// `Policy::compile`'s duration, by the host's clock.
    pub micros: u64,
    /// The VM's linear memory right after the compile (it only grows, so: the peak).
    pub wasm_memory_kib: u64,
    pub templates: u64,
}

/// Every report in an Envoy log, in order: one per VM Envoy configured.
pub fn compile_reports(log: &str) -> Vec<CompileReport> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once("` compiled in ")?.1;
            let (micros, rest) = rest.split_once(" us, wasm memory ")?;
            let (memory, rest) = rest.split_once(" KiB: ")?;
            let (templates, _) = rest.split_once(" path templates")?;
            Some(CompileReport {
                micros: micros.parse().ok()?,
                wasm_memory_kib: memory.parse().ok()?,
                templates: templates.parse().ok()?,
            })
        })
        .collect()
}

/// With `schemas: lazy`, each VM then logs "…: every schema compiled, N ms after
/// configure" once its tick has compiled them all: the N of each, in order.
pub fn background_compiles_ms(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once(": every schema compiled, ")?.1;
            rest.split_once(" ms after configure")?.0.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_filter_line_and_skips_others() {
        let log = "[info][wasm] wasm log apiguard apiguard: policy for API `petstore` compiled in \
                   1520 us, wasm memory 2112 KiB: 3 path templates, mode Enforce\n\
                   [info][wasm] something else compiled in 5 us\n";
        assert_eq!(
            compile_reports(log),
            [CompileReport {
                micros: 1520,
                wasm_memory_kib: 2112,
                templates: 3
            }]
        );
    }
}

//! Reading Envoy's `/stats/prometheus`.
//!
//! Envoy 1.40 files the metrics a Wasm plugin defines under its `wasmcustom` stats
//! namespace and prints them without that namespace and without the `envoy_` prefix of its
//! own stats; dots become underscores and the label set is empty. The filter's counter
//! `apiguard.rule.route.unknown_path.blocked` is therefore printed as
//!
//! ```text
//! # TYPE apiguard_rule_route_unknown_path_blocked counter
//! apiguard_rule_route_unknown_path_blocked{} 1
//! ```

use std::collections::BTreeMap;

/// A snapshot of the admin `/stats/prometheus` page: every sample by its series, i.e. the
/// metric name plus labels exactly as printed (`envoy_http_downstream_rq_total{...}`).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    samples: BTreeMap<String, f64>,
}

impl Stats {
    pub fn parse(text: &str) -> Stats {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Stats { samples }
    }

    /// The sample of `series`, if Envoy printed it.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }

    /// A counter the plugin defined, by the name it gave the host
    /// (`apiguard.requests_blocked`).
    pub fn wasm_counter(&self, name: &str) -> Option<f64> {
        if let Some(rest) = name.strip_prefix("apiguard.canary.") {
            if let [operation, category, rule, last] = rest.split('.').collect::<Vec<_>>()[..] {
                return self.labelled(
                    &format!("apiguard_canary_{last}"),
                    &[
                        ("operation", operation),
                        ("rule", &format!("{category}.{rule}")),
                    ],
                );
            }
        }
        // The families `envoy.yaml` tags: `apiguard.<tag>.<value>.<last>` is printed as
        // `apiguard_<tag>_<last>{<tag>="<value>"}`.
        let tagged = ["rule", "operation"].into_iter().find_map(|tag| {
            let rest = name.strip_prefix(&format!("apiguard.{tag}."))?;
            let (value, last) = rest.rsplit_once('.')?;
            Some(format!("apiguard_{tag}_{last}{{{tag}=\"{value}\"}}"))
        });
        match tagged {
            Some(series) => self.get(&series),
            None => self.get(&format!("{}{{}}", prometheus_name(name))),
        }
    }
}

impl Stats {
    /// The sample of `metric` with exactly these labels, in whatever order Envoy prints
    /// them.
    pub fn labelled(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        self.samples.iter().find_map(|(series, value)| {
            let inside = series
                .strip_prefix(metric)?
                .strip_prefix('{')?
                .strip_suffix('}')?;
            let mut printed: Vec<String> = inside.split(',').map(str::to_owned).collect();
            printed.sort();
            (printed == wanted).then_some(*value)
        })
    }
}

/// The Prometheus name Envoy prints for a custom stat: every byte outside `[A-Za-z0-9_]`
/// becomes `_`.
fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# TYPE envoy_wasm_apiguard_vm_reload counter
envoy_wasm_apiguard_vm_reload{} 0
# TYPE apiguard_requests_blocked counter
apiguard_requests_blocked{} 5
# TYPE apiguard_rule_blocked counter
apiguard_rule_blocked{rule=\"route.unknown_path\"} 3
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name=\"upstream\"} 12
";

    #[test]
    fn reads_a_wasm_counter_by_its_plugin_name() {
        let stats = Stats::parse(PAGE);
        let blocked = stats.wasm_counter("apiguard.rule.route.unknown_path.blocked");
        assert_eq!(blocked, Some(3.0));
        assert_eq!(stats.wasm_counter("apiguard.requests_blocked"), Some(5.0));
        assert_eq!(stats.wasm_counter("apiguard.requests_allowed"), None);
    }

    #[test]
    fn reads_a_canary_counter_by_both_its_labels() {
        let stats = Stats::parse(
            "apiguard_canary_would_block{rule=\"params.invalid\",operation=\"listPets\"} 2\n",
        );
        let name = "apiguard.canary.listPets.params.invalid.would_block";
        assert_eq!(stats.wasm_counter(name), Some(2.0));
        let other = "apiguard.canary.showPet.params.invalid.would_block";
        assert_eq!(stats.wasm_counter(other), None);
    }

    #[test]
    fn reads_a_labelled_series_as_printed() {
        let stats = Stats::parse(PAGE);
        let series = "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"upstream\"}";
        assert_eq!(stats.get(series), Some(12.0));
    }
}

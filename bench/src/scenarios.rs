//! What is measured: each scenario is one request against one running configuration, with
//! the scenarios it is compared with.

use crate::configs::ROUTE_HEADER;
use crate::tokens::{Algorithm, Keys};
use crate::wrk::Request;

/// The running Envoys, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Config {
    Bare,
    Noop,
    /// The floor filter (`bench/noop-filter`, `floor`): the host calls a full policy
    /// cannot avoid; `FloorBody` also reads the request body.
    Floor,
    FloorBody,
    /// The floor without its shared-data get and CAS set.
    FloorNoStore,
    Native,
    Allowlist,
    Full,
    /// The full policy with the token cache off and this algorithm's key as its JWKS:
    /// every request verifies its JWT's signature.
    JwtCold(Algorithm),
    /// The full policy without its `security` section: the baseline of the JWT's cost.
    FullNoJwt,
    /// The full policy without its rate limit: the baseline of the rate limit's cost.
    FullNoLimit,
    /// The full policy with a candidate contract (the contract canary): its document
    /// again, so the verdicts agree and the row is the second inspection's cost.
    FullCandidate,
    /// The full policy with `discovery` on: a request matching a declared operation
    /// should cost what it costs without (discovery records only undeclared ones).
    FullDiscovery,
    /// The full policy with `discovery: {learn: 1.0}`: every exchange of the declared
    /// operation is sampled and its JSON bodies learned; the row is the cost of one
    /// sampled exchange (at a rate `r`, `r` times it on average).
    FullLearn,
    /// The full policy with `stats: {analytics: true}`: the per-operation stats' cost.
    FullAnalytics,
    /// The full policy with `behaviour.bola` (relative to the operation's normal) and
    /// `behaviour.baselines` on: the distinct-object counting's and the baselines' cost.
    FullBehaviour,
    /// The full policy in `monitor`, its response checks on: the direct response drifts
    /// from the contract (a body where the operation declares none), so every request
    /// records one `response.media_type` finding, and one event.
    Drift,
    /// apiguard with GitHub's REST API as its policy.
    GitHub,
    /// GitHub's policy with `schemas: lazy` (scale section only).
    GitHubLazy,
    /// The same document cut down to the one path the deep-path scenario requests.
    GitHubOnePath,
}

#[derive(Clone)]
pub struct Scenario {
    /// Stable id: the key in `bench/recorded.json`.
    pub id: String,
    pub label: String,
    pub config: Config,
    pub request: Request,
    /// The bare-Envoy and no-op-filter scenarios with the same request shape.
    pub bare: &'static str,
    pub noop: &'static str,
    /// The floor-filter scenario with the same request shape.
    pub floor: &'static str,
    /// The status every answer has; a scenario that measures refusals expects theirs.
    pub status: u16,
}

/// The deep templated GitHub path the scale section matches.
pub const GITHUB_DEEP_PATH: &str =
    "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments";

/// The id of the scenario that measures `algorithm`'s cold verification.
pub fn jwt_cold_id(algorithm: Algorithm) -> String {
    format!("jwt-cold-{}", algorithm.slug())
}

/// The header-only GET, carrying `token`.
fn get(token: &str) -> Request {
    Request {
        method: "GET",
        target: "/repos/octo-org/hello-world/issues/1347/comments?per_page=50&page=2&since=2024-01-01T00:00:00Z".into(),
        headers: headers(token, &[("x-github-api-version", "2022-11-28")]),
        body: None,
    }
}

/// The headline scenarios, the per-algorithm JWT ones and the GitHub scale ones, in the
/// order of the table. Every request carries the headline (RS256) token but the
/// per-algorithm ones, which carry their algorithm's.
pub fn all(keys: &Keys) -> Vec<Scenario> {
    let token = keys.headline.token.as_str();
    let get = get(token);
    let post = Request {
        method: "POST",
        target: "/repos/octo-org/hello-world/issues".into(),
        headers: headers(token, &[("content-type", "application/json")]),
        body: Some(issue_body(1024)),
    };
    let github_deep = Request {
        method: "GET",
        target: "/repos/octo-org/hello-world/pulls/42/reviews/80/comments?per_page=50".into(),
        ..get.clone()
    };
    let scenario = |id: &str, label: &str, config, request: &Request, bare, noop| Scenario {
        id: id.to_owned(),
        label: label.to_owned(),
        config,
        request: request.clone(),
        bare,
        noop,
        floor: if request.body.is_some() {
            "floor-post"
        } else {
            "floor"
        },
        status: 200,
    };
    // The GET with a query parameter out of its bounds: refused (400) by the contract,
    // one `request.query` event per request.
    let invalid_get = Request {
        target: get.target.replace("per_page=50", "per_page=500"),
        ..get.clone()
    };
    let mut all = vec![
        scenario(
            "bare",
            "1. bare Envoy (no filter)",
            Config::Bare,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "noop",
            "2. no-op Rust proxy-wasm filter",
            Config::Noop,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "floor",
            "floor filter: the host calls a full policy cannot avoid",
            Config::Floor,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "floor-no-store",
            "floor filter without its shared-data get and CAS set",
            Config::FloorNoStore,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "native",
            "3. Envoy jwt_authn (cached) + local_ratelimit",
            Config::Native,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "allowlist",
            "4. apiguard, allowlist only",
            Config::Allowlist,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get",
            "5. apiguard, full policy*, header-only GET",
            Config::Full,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-nojwt",
            "full policy* without the JWT check",
            Config::FullNoJwt,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-nolimit",
            "full policy* without the rate limit",
            Config::FullNoLimit,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-candidate",
            "full policy* with a candidate contract (canary; same verdicts)",
            Config::FullCandidate,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-discovery",
            "full policy* with `discovery` on, a declared operation",
            Config::FullDiscovery,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-learn",
            "full policy* with `discovery: {learn: 1.0}`: every GET sampled",
            Config::FullLearn,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-analytics",
            "full policy* with per-operation analytics",
            Config::FullAnalytics,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "full-get-behaviour",
            "full policy* with object-enumeration counting (`behaviour.bola`, relative) and per-operation baselines",
            Config::FullBehaviour,
            &get,
            "bare",
            "noop",
        ),
        scenario(
            "drift",
            "full policy* in `monitor`, upstream drifts: one event per request",
            Config::Drift,
            &get,
            "bare",
            "noop",
        ),
        Scenario {
            status: 400,
            ..scenario(
                "blocked",
                "full policy*, a flood of refused requests (400): one event each",
                Config::Full,
                &invalid_get,
                "bare",
                "noop",
            )
        },
    ];
    all.extend(jwt_cold(keys));
    all.extend([
        scenario(
            "bare-post",
            "bare Envoy, 1 KB POST",
            Config::Bare,
            &post,
            "bare-post",
            "noop-post",
        ),
        scenario(
            "noop-post",
            "no-op filter, 1 KB POST",
            Config::Noop,
            &post,
            "bare-post",
            "noop-post",
        ),
        scenario(
            "floor-post",
            "floor filter reading the 1 KB body",
            Config::FloorBody,
            &post,
            "bare-post",
            "noop-post",
        ),
        scenario(
            "full-post",
            "6. apiguard, full policy, 1 KB JSON POST validated",
            Config::Full,
            &post,
            "bare-post",
            "noop-post",
        ),
        scenario(
            "full-post-learn",
            "full policy, 1 KB JSON POST with `discovery: {learn: 1.0}`: its body learned",
            Config::FullLearn,
            &post,
            "bare-post",
            "noop-post",
        ),
        scenario(
            "github-deep",
            "GitHub policy (1,223 ops), deep templated GET",
            Config::GitHub,
            &github_deep,
            "bare",
            "noop",
        ),
        scenario(
            "github-one",
            "same path, policy of that one path",
            Config::GitHubOnePath,
            &github_deep,
            "bare",
            "noop",
        ),
        scenario(
            "github-post",
            "GitHub policy, 1 KB `issues/create` POST validated",
            Config::GitHub,
            &post,
            "bare-post",
            "noop-post",
        ),
    ]);
    all
}

/// One scenario per algorithm: the header-only GET with that algorithm's token, against
/// the full policy with its key and the token cache off.
fn jwt_cold(keys: &Keys) -> Vec<Scenario> {
    keys.per_algorithm
        .iter()
        .map(|credentials| Scenario {
            id: jwt_cold_id(credentials.algorithm),
            label: format!(
                "full policy*, token cache off, {} verified per request",
                credentials.algorithm
            ),
            config: Config::JwtCold(credentials.algorithm),
            request: get(&credentials.token),
            bare: "bare",
            noop: "noop",
            floor: "floor",
            status: 200,
        })
        .collect()
}

/// The same request routed to the local upstream instead of the direct response.
pub fn proxied(request: &Request) -> Request {
    let mut request = request.clone();
    for (name, value) in &mut request.headers {
        if name == ROUTE_HEADER {
            *value = "proxied".into();
        }
    }
    request
}

fn headers(token: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers = vec![
        ("authorization".to_owned(), format!("Bearer {token}")),
        ("accept".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "apiguard-bench".to_owned()),
        (ROUTE_HEADER.to_owned(), "direct".to_owned()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    headers
}

/// An issue as GitHub's `issues/create` takes it (and the bench API declares it), its
/// `body` text padded so the JSON is exactly `size` bytes.
pub fn issue_body(size: usize) -> String {
    let with_text = |text: &str| {
        serde_json::json!({
            "title": "Crash when the config file is empty",
            "body": text,
            "assignees": ["octocat", "hubot"],
            "milestone": 1,
            "labels": [{"name": "bug", "color": "d73a4a"}, {"name": "triage", "color": "ededed"}],
            "due_on": "2025-10-01T12:00:00Z",
        })
        .to_string()
    };
    let frame = with_text("").len();
    let sentence = "Steps to reproduce: start the service with an empty file; it exits at once. ";
    let text: String = sentence
        .chars()
        .cycle()
        .take(size.saturating_sub(frame))
        .collect();
    with_text(&text)
}

#[cfg(test)]
mod tests {
    use super::issue_body;

    #[test]
    fn issue_body_is_the_requested_size_and_json() {
        let body = issue_body(1024);
        assert_eq!(body.len(), 1024);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
    }
}

//! Ambiguous path encodings: whatever the upstream would make of them, the filter refuses
//! them (400, a `path.*` rule) and nothing arrives.
//!
//! Envoy 1.40's codecs (HTTP/1 and HTTP/2) pass every target below to the filter unchanged,
//! because envoy.yaml pins `normalize_path: false`, `merge_slashes: false` and
//! `path_with_escaped_slashes_action: KEEP_UNCHANGED`. Raw control bytes and `#` cannot be
//! written in a request target here (the client refuses them), so their percent-encoded
//! forms stand in.

use apiguard_harness::{locate, HttpVersion, Policy};

use crate::fixture::{assert_problem, Proxy};

#[test]
fn ambiguous_paths_are_refused_and_never_forwarded() {
    let cases = [
        ("/v1/pets%2Fmine", "path.encoded_separator"),
        ("/v1/pets%2fmine", "path.encoded_separator"),
        ("/v1/pets%5Cmine", "path.encoded_separator"),
        ("/v1/pets/%2e%2e/admin", "path.dot_segment"),
        ("/v1/pets/%2E./admin", "path.dot_segment"),
        ("/v1/pets/../admin", "path.dot_segment"),
        ("/v1/pets/./mine", "path.dot_segment"),
        ("/v1/pets\\mine", "path.backslash"),
        ("/v1/pets/%zz", "path.invalid_encoding"),
        ("/v1/pets/%4", "path.invalid_encoding"),
        ("/v1/pets/%ff", "path.invalid_encoding"),
        ("/v1//pets", "path.empty_segment"),
        ("/v1/pets/%00", "path.control_char"),
        ("/v1/pets/%0d%0a", "path.control_char"),
    ];
    let proxy = Proxy::start(Policy::File(locate::policy("petstore")));
    for version in [HttpVersion::Http1, HttpVersion::H2c] {
        let client = proxy.client(version);
        for (target, rule) in cases {
            let response = client.get(target).unwrap();
            assert_problem(&format!("{version:?} GET {target}"), &response, 400, rule);
        }
    }
    proxy.assert_upstream_saw_nothing();
}

//! Rendering the shipped `envoy/envoy.yaml` into a config for one local run.
//!
//! Tests and `harness up` start Envoy from the very file docker-compose mounts, changing only
//! what a local run must: loopback addresses, the upstream's address, the `.wasm` path and the
//! policy, and, where a test says so, the connection manager's [`Downstream`] settings.
//! Anything else a test relies on (filter order, failure policy, codec) is therefore
//! what ships. Elements are found by their `name`, not position, so reordering the file or
//! adding filters does not break rendering.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use apiguard_filter::render;
use serde_json::{json, Value};

use crate::Error;

/// The listener that receives API traffic.
pub const LISTENER: &str = "ingress";
/// The HTTP filter (and plugin) name of apiguard.
pub const PLUGIN: &str = "apiguard";
/// The cluster that stands for the protected API.
pub const CLUSTER: &str = "upstream";
/// The cluster a test's JWKS endpoint is reached through (`remote_jwks.http_uri.cluster`).
pub const JWKS_CLUSTER: &str = "jwks";
const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";

/// What a local run changes in the shipped config.
#[derive(Debug, Clone)]
pub struct RenderOptions<'a> {
    /// Listener address; port 0 lets the kernel pick one (read back from the admin API).
    pub listen: SocketAddr,
    /// Admin address; port 0 as for `listen`.
    pub admin: SocketAddr,
    /// Where the `upstream` cluster points.
    pub upstream: SocketAddr,
    /// The built filter.
    pub wasm: &'a Path,
    /// The plugin configuration; `None` keeps the policy embedded in the template.
    pub policy: Option<&'a Value>,
    /// `false` removes apiguard from the filter chain: the baseline that shows what Envoy
    /// alone would do with a request.
    pub with_filter: bool,
    /// A JWKS endpoint to add as the [`JWKS_CLUSTER`] cluster.
    pub jwks: Option<SocketAddr>,
    pub downstream: Downstream,
}

/// The connection manager's settings about the downstream that a test may change from
/// what ships; the default is what ships. A test on loopback is always one client
/// (127.0.0.1): to stand for several, it plays a trusted proxy that names them in
/// `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Downstream {
    /// `xff_num_trusted_hops` (ships 0).
    pub xff_num_trusted_hops: u32,
    /// `headers_with_underscores_action: ALLOW` (ships `REJECT_REQUEST`), for a test of
    /// the filter's own defence against underscore twins of its headers.
    pub allow_underscores: bool,
}

/// The shipped Envoy config, parsed, with typed access to the parts the harness touches.
#[derive(Debug, Clone)]
pub struct Template {
    path: PathBuf,
    config: Value,
    anchors: Anchors,
}

/// JSON pointers to the elements found by name.
#[derive(Debug, Clone)]
struct Anchors {
    listener: String,
    /// The `ingress` listener's HTTP connection manager's `typed_config`.
    connection_manager: String,
    http_filter: String,
    cluster: String,
}

impl Template {
    /// Loads and indexes a config such as [`crate::locate::envoy_yaml`].
    pub fn load(path: &Path) -> Result<Template, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(Error::io(format!("reading {}", path.display())))?;
        let config: Value = serde_yaml::from_str(&text)?;
        let anchors = Anchors::find(&config).map_err(|message| Error::Template {
            path: path.to_owned(),
            message,
        })?;
        Ok(Template {
            path: path.to_owned(),
            config,
            anchors,
        })
    }

    /// The policy embedded as the plugin configuration (the `Struct`'s `value`).
    pub fn embedded_policy(&self) -> Result<&Value, Error> {
        self.get(&format!("{}/configuration/value", self.plugin_config()))
    }

    /// The `.wasm` path the plugin loads, as the container sees it.
    pub fn wasm_filename(&self) -> Result<&str, Error> {
        self.get_str(&format!(
            "{}/vm_config/code/local/filename",
            self.plugin_config()
        ))
    }

    /// The `ingress` listener's port.
    pub fn listener_port(&self) -> Result<u64, Error> {
        self.get_u64(&format!(
            "{}/address/socket_address/port_value",
            self.anchors.listener
        ))
    }

    /// The admin port.
    pub fn admin_port(&self) -> Result<u64, Error> {
        self.get_u64("/admin/address/socket_address/port_value")
    }

    /// The `upstream` cluster's first endpoint, as `(host, port)`.
    pub fn upstream_endpoint(&self) -> Result<(&str, u64), Error> {
        let address = format!(
            "{}/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address",
            self.anchors.cluster
        );
        Ok((
            self.get_str(&format!("{address}/address"))?,
            self.get_u64(&format!("{address}/port_value"))?,
        ))
    }

    /// The config for one local run.
    pub fn render(&self, options: &RenderOptions<'_>) -> Result<Value, Error> {
        let mut config = self.config.clone();
        let plugin_config = self.plugin_config();
        let cluster = &self.anchors.cluster;
        let mut edits = vec![
            ("/admin/address".to_owned(), socket_address(options.admin)),
            (
                format!("{}/address", self.anchors.listener),
                socket_address(options.listen),
            ),
            (
                format!("{plugin_config}/vm_config/code/local/filename"),
                json!(options.wasm.to_string_lossy()),
            ),
            (format!("{cluster}/type"), json!("STATIC")),
            (
                format!("{cluster}/load_assignment"),
                json!({
                    "cluster_name": CLUSTER,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {
                        "address": socket_address(options.upstream),
                    }}]}],
                }),
            ),
        ];
        if let Some(policy) = options.policy {
            let pointer = format!("{plugin_config}/configuration/value");
            edits.push((pointer, policy.clone()));
        }
        let manager = &self.anchors.connection_manager;
        let downstream = options.downstream;
        if downstream.xff_num_trusted_hops != Downstream::default().xff_num_trusted_hops {
            let pointer = format!("{manager}/xff_num_trusted_hops");
            edits.push((pointer, json!(downstream.xff_num_trusted_hops)));
        }
        if downstream.allow_underscores {
            let pointer =
                format!("{manager}/common_http_protocol_options/headers_with_underscores_action");
            edits.push((pointer, json!("ALLOW")));
        }
        for (pointer, value) in edits {
            let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", &pointer));
            match config.pointer_mut(parent) {
                Some(Value::Object(object)) => object.insert(key.to_owned(), value),
                _ => return Err(self.error(format!("no object at {parent}"))),
            };
        }
        if let (Some(jwks), Some(Value::Array(clusters))) = (
            options.jwks,
            config.pointer_mut("/static_resources/clusters"),
        ) {
            clusters.push(json!({
                "name": JWKS_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": JWKS_CLUSTER,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(jwks)}}]}],
                },
            }));
        }
        if !options.with_filter {
            let (filters, index) = self
                .anchors
                .http_filter
                .rsplit_once('/')
                .unwrap_or_default();
            if let (Some(Value::Array(filters)), Ok(index)) =
                (config.pointer_mut(filters), index.parse::<usize>())
            {
                filters.remove(index);
            }
        }
        Ok(config)
    }

    /// Turns on HTTP/1.1 trailers in a rendered config: the listener's codec and the
    /// upstream cluster's then pass them on instead of dropping them.
    pub fn enable_http1_trailers(&self, config: &mut Value) -> Result<(), Error> {
        let options = json!({"enable_trailers": true});
        let hcm = &self.anchors.connection_manager;
        let cluster = format!("{}/typed_extension_protocol_options", self.anchors.cluster);
        let upstream = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": options},
            }
        });
        for (pointer, value) in [
            (format!("{hcm}/http_protocol_options"), options.clone()),
            (cluster, upstream),
        ] {
            let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", &pointer));
            match config.pointer_mut(parent) {
                Some(Value::Object(object)) => object.insert(key.to_owned(), value),
                _ => return Err(self.error(format!("no object at {parent}"))),
            };
        }
        Ok(())
    }

    /// Makes the rendered config take apiguard's configuration from Envoy's extension
    /// config discovery (ECDS) instead of the listener: the `apiguard` HTTP filter, in its
    /// place in the chain, subscribes to the resource in the file `resource` (as `apiguard
    /// render ecds` writes it), reloaded whenever a file is moved into its directory. Envoy
    /// subscribes to xDS resources only as a named node, so the bootstrap gets a `node` if
    /// it has none (a sidecar's comes from Istio).
    pub fn deliver_by_ecds(&self, config: &mut Value, resource: &Path) -> Result<(), Error> {
        if let Value::Object(bootstrap) = config {
            let node = json!({"id": render::PLUGIN, "cluster": render::PLUGIN});
            bootstrap.entry("node").or_insert(node);
        }
        let directory = resource.parent().unwrap_or(Path::new("."));
        let filter = render::ecds_filter(&resource.to_string_lossy(), &directory.to_string_lossy());
        match config.pointer_mut(&self.anchors.http_filter) {
            Some(slot) => *slot = filter,
            None => return Err(self.error(format!("nothing at {}", self.anchors.http_filter))),
        }
        Ok(())
    }

    fn plugin_config(&self) -> String {
        format!("{}/typed_config/config", self.anchors.http_filter)
    }

    fn get(&self, pointer: &str) -> Result<&Value, Error> {
        let value = self.config.pointer(pointer);
        value.ok_or_else(|| self.error(format!("nothing at {pointer}")))
    }

    fn get_str(&self, pointer: &str) -> Result<&str, Error> {
        let value = self.get(pointer)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(pointer, "a string"))
    }

    fn get_u64(&self, pointer: &str) -> Result<u64, Error> {
        let value = self.get(pointer)?;
        value
            .as_u64()
            .ok_or_else(|| self.wrong_type(pointer, "a port number"))
    }

    fn wrong_type(&self, pointer: &str, expected: &str) -> Error {
        self.error(format!("{pointer} is not {expected}"))
    }

    fn error(&self, message: String) -> Error {
        Error::Template {
            path: self.path.clone(),
            message,
        }
    }
}

impl Anchors {
    fn find(config: &Value) -> Result<Anchors, String> {
        let listener = named(config, "/static_resources/listeners", LISTENER)?;
        let hcm = named(
            config,
            &format!("{listener}/filter_chains/0/filters"),
            HTTP_CONNECTION_MANAGER,
        )?;
        let connection_manager = format!("{hcm}/typed_config");
        let http_filter = named(
            config,
            &format!("{connection_manager}/http_filters"),
            PLUGIN,
        )?;
        let cluster = named(config, "/static_resources/clusters", CLUSTER)?;
        Ok(Anchors {
            listener,
            connection_manager,
            http_filter,
            cluster,
        })
    }
}

/// The JSON pointer of the element called `name` in the array at `list`.
fn named(config: &Value, list: &str, name: &str) -> Result<String, String> {
    let elements = config
        .pointer(list)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no array at {list}"))?;
    elements
        .iter()
        .position(|element| element.get("name").and_then(Value::as_str) == Some(name))
        .map(|index| format!("{list}/{index}"))
        .ok_or_else(|| format!("no element named `{name}` in {list}"))
}

fn socket_address(address: SocketAddr) -> Value {
    json!({"socket_address": {
        "address": address.ip().to_string(),
        "port_value": address.port(),
    }})
}

//! The behavioural detection simulation (`harness behaviour-sim`, `make behaviour-sim`): a
//! seeded mix of benign clients and scripted attackers, concurrently through a real Envoy
//! with two workers, and per rule how many attackers it found (recall), how many of the
//! clients it refused were attackers (precision), whether it ever refused a benign client,
//! and how many requests and seconds each attacker got before its first refusal.
//!
//! Every client is its own thread, named by its `X-Forwarded-For` address (Envoy trusts one
//! hop) and, where the contract asks for a token, by its JWT's `sub`: the network keys
//! the sign-in rules, the identity BOLA and the flows. The upstream is a small API with
//! state of its own ([`answer`]): pets 1 to [`CATALOGUE`] exist and others are 404, a
//! password is right only for its user (401 otherwise), anything else is 2xx, so no client
//! tells the upstream what to answer.
//!
//! Benign clients read their own few pets and some popular ones (Zipf-like: a handful
//! often, the rest rarely; one of their own is gone, a 404), list pets, fill a cart before
//! checking out (and sometimes leave it), register webhooks at public URLs, and sign in at
//! the start and every [`RELOGIN`] with a typo now and then. Attackers do what [`Kind`]
//! says. A new rule is one more [`Kind`] with its script and one more row of [`RULES`].
//!
//! Each client's requests follow from the seed and its number alone; how the threads
//! interleave, and so the exact request at which a window fills, varies from run to run.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::Request;
use serde_json::{json, Value};

use crate::render::Downstream;
use crate::soak::{token, SECRET};
use crate::upstream::RecordedRequest;
use crate::{Client, EchoUpstream, Envoy, EnvoyOptions, Error, HttpVersion, Policy};

/// Pets that exist upstream: ids 1 to this; any other id is 404.
pub const CATALOGUE: u32 = 400;
/// BOLA: distinct pets per identity within the window.
const BOLA_MAX_IDS: u32 = 30;
const BOLA_WINDOW: u64 = 60;
/// Sign-ins: failures and distinct usernames per client network within the window.
const MAX_FAILURES: u32 = 10;
const MAX_USERNAMES: u32 = 5;
const LOGIN_WINDOW: u64 = 300;
const FLOW_WINDOW: u64 = 600;
/// A benign client signs in again after this long (its session ended).
const RELOGIN: Duration = Duration::from_secs(120);
/// Requests an attacker sends after its first refusal (to see it stay refused).
const AFTER_DETECTION: u32 = 5;
/// Requests an attacker sends at most.
const ATTACK_BUDGET: u32 = 400;

/// What a simulated client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Benign,
    /// Walks pet ids upwards from a random start, beyond the catalogue: mostly 404s.
    IdWalker,
    /// Reads every pet of the catalogue in turn: all 200s.
    Scraper,
    /// Guesses one user's password.
    BruteForcer,
    /// Tries leaked credentials, a new username each time.
    Stuffer,
    /// Checks out without ever filling a cart.
    FlowSkipper,
    /// Registers webhooks at addresses inside the network, in several spellings.
    SsrfSender,
}

impl Kind {
    pub const ATTACKERS: [Kind; 6] = [
        Kind::IdWalker,
        Kind::Scraper,
        Kind::BruteForcer,
        Kind::Stuffer,
        Kind::FlowSkipper,
        Kind::SsrfSender,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Benign => "benign",
            Kind::IdWalker => "id walker",
            Kind::Scraper => "scraper",
            Kind::BruteForcer => "brute forcer",
            Kind::Stuffer => "credential stuffer",
            Kind::FlowSkipper => "flow skipper",
            Kind::SsrfSender => "SSRF sender",
        }
    }
}

/// One rule the simulation measures: the attackers it must find, and when it should.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub attackers: &'static [Kind],
    /// When the policy below says the rule finds a client, for the report.
    pub found_when: &'static str,
}

/// The rules and the attackers each must find. A new rule: its settings in [`policy`], a
/// [`Kind`] with its script in [`Script::step`], and a row here.
pub const RULES: &[Rule] = &[
    Rule {
        id: "behaviour.bola",
        attackers: &[Kind::IdWalker, Kind::Scraper],
        found_when: "31st distinct pet within 60 s",
    },
    Rule {
        id: "behaviour.brute_force",
        attackers: &[Kind::BruteForcer],
        found_when: "after 10 failed sign-ins within 300 s",
    },
    Rule {
        id: "behaviour.credential_stuffing",
        attackers: &[Kind::Stuffer],
        found_when: "6th username within 300 s",
    },
    Rule {
        id: "behaviour.flow",
        attackers: &[Kind::FlowSkipper],
        found_when: "1st checkout without a cart within 600 s",
    },
    Rule {
        id: "request.ssrf",
        attackers: &[Kind::SsrfSender],
        found_when: "1st internal URL",
    },
];

/// The simulation policy: every behaviour rule, SSRF checks on a `format: uri` field,
/// bearer tokens from a local HS256 key, quarantine for BOLA; `slots` in each behaviour
/// table (see [`SimOptions::slots`]).
pub fn policy(slots: u32) -> Value {
    let id = json!([{"name": "petId", "in": "path", "required": true,
        "schema": {"type": "integer"}}]);
    let json_body = |properties: Value, required: Value| {
        json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "properties": properties, "required": required}}}})
    };
    let document = json!({
        "openapi": "3.1.0",
        "info": {"title": "pet shop", "version": "1"},
        "servers": [{"url": "/v1"}],
        "security": [{"local": []}],
        "components": {"securitySchemes": {"local": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/pets": {"get": {"operationId": "listPets", "parameters": [{"name": "limit",
                "in": "query", "schema": {"type": "integer", "maximum": 100}}]}},
            "/pets/{petId}": {"get": {"operationId": "showPet", "parameters": id,
                "x-apiguard": {"object_id": "petId"}}},
            "/cart": {"post": {"operationId": "addToCart"}},
            "/checkout": {"post": {"operationId": "checkout"}},
            "/webhooks": {"post": {"operationId": "createWebhook", "requestBody": json_body(
                json!({"url": {"type": "string", "format": "uri"}}), json!(["url"]))}},
            "/login": {"post": {"operationId": "login", "security": [],
                "x-apiguard": {"sensitive": "login"}, "requestBody": json_body(
                    json!({"user": {"type": "string"}, "password": {"type": "string"}}),
                    json!(["user", "password"]))}}
        }
    });
    let jwks = json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)}]});
    json!({
        "name": "petshop",
        "openapi": {"document": document},
        "security": {"providers": {"local": {"local_jwks": {"inline_string": jwks.to_string()}}}},
        "abuse": {"quarantine": {"strikes": 50, "window_seconds": 60, "duration_seconds": 300}},
        "behaviour": {
            "bola": {"max_distinct_ids": BOLA_MAX_IDS, "window_seconds": BOLA_WINDOW,
                "action": "quarantine", "slots": slots},
            "credentials": {"username": "user", "max_failures": MAX_FAILURES,
                "max_usernames": MAX_USERNAMES, "window_seconds": LOGIN_WINDOW,
                "action": "block", "slots": slots},
            "flows": [{"name": "checkout", "after": "addToCart", "then": "checkout",
                "window_seconds": FLOW_WINDOW, "action": "block", "slots": slots}]
        }
    })
}

/// The upstream's answer: what a real pet shop would say to the request.
pub fn answer(request: &RecordedRequest) -> u16 {
    let path = request.path.as_str();
    if let Some(id) = path.strip_prefix("/v1/pets/") {
        return match id.parse::<u32>() {
            Ok(id) if (1..=CATALOGUE).contains(&id) => 200,
            _ => 404,
        };
    }
    match path {
        "/v1/login" => {
            let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
            let user = body["user"].as_str().unwrap_or_default();
            if body["password"].as_str() == Some(&password(user)) {
                200
            } else {
                401
            }
        }
        "/v1/cart" | "/v1/webhooks" => 201,
        _ => 200,
    }
}

/// The one right password of `user`.
fn password(user: &str) -> String {
    format!("pw-{user}")
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    pub benign: usize,
    /// Attackers of each [`Kind`].
    pub attackers_per_kind: usize,
    pub duration: Duration,
    /// Envoy workers.
    pub concurrency: u16,
    /// The slots of each behaviour table. Two clients in one slot cost something: in the
    /// flow table they take each other's permission away (a benign checkout refused when
    /// another identity's cart came between its cart and its checkout), in the counting
    /// tables a busy benign client restarts an attacker's window (a late finding). At the
    /// filter's default 4096, 140 clients share a slot somewhere in 9 runs of 10 (the
    /// birthday bound; each run draws a new slot secret); at 65536, the maximum and the
    /// simulation's default, in 1 of 7. `--slots 4096` shows the cost.
    pub slots: u32,
}

/// A small seeded generator (SplitMix64): the same seed, the same clients.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// An index into `n` items, item k with weight 1/(k+1): a few often, the rest rarely.
    fn zipf(&mut self, n: usize) -> usize {
        let total: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        let mut point = (self.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for k in 0..n {
            point -= 1.0 / (k + 1) as f64;
            if point <= 0.0 {
                return k;
            }
        }
        n.saturating_sub(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// One request of a script.
#[derive(Debug, Clone)]
struct Step {
    method: &'static str,
    target: String,
    body: Option<Value>,
    /// Part of the attack (counted towards the attacker's detection latency).
    attack: bool,
}

impl Step {
    fn get(target: String, attack: bool) -> Step {
        Step {
            method: "GET",
            target,
            body: None,
            attack,
        }
    }

    fn post(target: &str, body: Option<Value>, attack: bool) -> Step {
        Step {
            method: "POST",
            target: target.to_owned(),
            body,
            attack,
        }
    }

    fn login(user: &str, password: &str, attack: bool) -> Step {
        let body = json!({"user": user, "password": password});
        Step::post("/v1/login", Some(body), attack)
    }
}

/// Pets many benign clients look at, most popular first.
const POPULAR: [u32; 10] = [7, 3, 42, 12, 99, 150, 5, 230, 61, 18];
/// Internal addresses in the spellings an SSRF payload takes.
const INTERNAL_URLS: [&str; 8] = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:8080/admin",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
    "http://localhost./internal",
    "http://10.0.0.5:9200/_cat/indices",
    "file:///etc/passwd",
];

/// A client's script: what it sends next.
struct Script {
    kind: Kind,
    name: String,
    rng: Rng,
    /// A benign client's own pets (the first one gone: 404).
    own: Vec<u32>,
    /// Where an id walker starts: inside the catalogue or beyond it.
    walk_from: u32,
    queued: VecDeque<Step>,
    sent: u32,
    last_login: Option<Instant>,
    /// A benign client mistypes its username at most once.
    misspelt_user: bool,
}

impl Script {
    fn new(kind: Kind, name: String, mut rng: Rng) -> Script {
        let mut own = vec![CATALOGUE + 1 + rng.below(1000) as u32];
        own.extend((0..7).map(|_| 1 + rng.below(u64::from(CATALOGUE)) as u32));
        let walk_from = 1 + rng.below(u64::from(2 * CATALOGUE)) as u32;
        Script {
            kind,
            name,
            rng,
            own,
            walk_from,
            queued: VecDeque::new(),
            sent: 0,
            last_login: None,
            misspelt_user: false,
        }
    }

    /// The next request, and how long to think before sending it.
    fn next(&mut self) -> (Step, Duration) {
        self.sent += 1;
        let (from, to) = if self.kind == Kind::Benign {
            (200, 900)
        } else {
            (10, 60)
        };
        let pause = self.rng.millis(from, to);
        (self.step(), pause)
    }

    fn benign(&mut self) -> Step {
        if self.last_login.is_none_or(|at| at.elapsed() >= RELOGIN) {
            self.last_login = Some(Instant::now());
            self.sign_in();
        }
        if let Some(step) = self.queued.pop_front() {
            return step;
        }
        let roll = self.rng.below(100);
        match roll {
            0..=54 => {
                let id = self.own[self.rng.zipf(self.own.len())];
                Step::get(format!("/v1/pets/{id}"), false)
            }
            55..=69 => {
                let id = POPULAR[self.rng.zipf(POPULAR.len())];
                Step::get(format!("/v1/pets/{id}"), false)
            }
            70..=81 => Step::get(format!("/v1/pets?limit={}", 10 + self.rng.below(40)), false),
            82..=93 => {
                // Fill a cart; most carts are checked out, in order.
                if self.rng.chance(0.8) {
                    self.queued
                        .push_back(Step::post("/v1/checkout", None, false));
                }
                Step::post("/v1/cart", None, false)
            }
            _ => {
                let url = format!("https://hooks.example.com/{}/{}", self.name, self.sent);
                Step::post("/v1/webhooks", Some(json!({"url": url})), false)
            }
        }
    }

    /// Queues a sign-in: now and then a wrong password or two first, and once in the run
    /// perhaps a misspelt username.
    fn sign_in(&mut self) {
        let typos = match self.rng.below(10) {
            0..=6 => 0,
            7..=8 => 1,
            _ => 2,
        };
        for _ in 0..typos {
            self.queued
                .push_back(Step::login(&self.name, "pw-wrong", false));
        }
        if !self.misspelt_user && self.rng.chance(0.1) {
            self.misspelt_user = true;
            let misspelt = self.name.to_uppercase();
            self.queued
                .push_back(Step::login(&misspelt, &password(&self.name), false));
        }
        self.queued
            .push_back(Step::login(&self.name, &password(&self.name), false));
    }

    /// What the client's kind sends next.
    fn step(&mut self) -> Step {
        let n = self.sent;
        match self.kind {
            Kind::Benign => self.benign(),
            Kind::IdWalker => Step::get(format!("/v1/pets/{}", self.walk_from + n), true),
            Kind::Scraper => Step::get(format!("/v1/pets/{}", (n - 1) % CATALOGUE + 1), true),
            Kind::BruteForcer => Step::login("user-0", &format!("guess-{n}"), true),
            Kind::Stuffer => {
                let user = format!("leaked-{}-{n}@example.com", self.rng.below(1_000_000));
                Step::login(&user, "Summer2026!", true)
            }
            // A few ordinary reads, then checkouts, with reads between.
            Kind::FlowSkipper if n <= 3 || n % 2 == 0 => Step::get(
                format!("/v1/pets/{}", POPULAR[n as usize % POPULAR.len()]),
                false,
            ),
            Kind::FlowSkipper => Step::post("/v1/checkout", None, true),
            Kind::SsrfSender if n <= 3 || n % 2 == 0 => {
                let url = format!("https://hooks.example.com/{}/{n}", self.name);
                Step::post("/v1/webhooks", Some(json!({"url": url})), false)
            }
            Kind::SsrfSender => {
                let url = INTERNAL_URLS[(n as usize / 2) % INTERNAL_URLS.len()];
                Step::post("/v1/webhooks", Some(json!({"url": url})), true)
            }
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attack: bool,
    /// Since the run started.
    pub at: Duration,
    /// `None`: the exchange failed.
    pub status: Option<u16>,
    /// The rule of apiguard's refusal (its problem's `rule`), if it refused.
    pub rule: Option<String>,
}

/// One simulated client and what it went through.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// Its number: the seed's stream and its address follow from it.
    pub index: usize,
    pub kind: Kind,
    pub name: String,
    pub address: String,
    pub outcomes: Vec<Outcome>,
}

impl ClientRecord {
    /// The first refusal by apiguard: its rule, the attack requests sent up to and
    /// including it, and the time since the first attack request (a benign client's: since
    /// its first request).
    pub fn first_refusal(&self) -> Option<(&str, usize, Duration)> {
        let at = self.outcomes.iter().position(|o| o.rule.is_some())?;
        let refused = &self.outcomes[at];
        let began = (self.outcomes.iter().find(|o| o.attack))
            .or(self.outcomes.first())
            .map_or(refused.at, |o| o.at);
        let attacks = self.outcomes[..=at].iter().filter(|o| o.attack).count();
        let rule = refused.rule.as_deref()?;
        Some((rule, attacks, refused.at.saturating_sub(began)))
    }

    pub fn refused_by(&self, rule: &str) -> bool {
        self.outcomes
            .iter()
            .any(|o| o.rule.as_deref() == Some(rule))
    }

    pub fn refused(&self) -> bool {
        self.outcomes.iter().any(|o| o.rule.is_some())
    }
}

/// Per rule: the measured figures.
#[derive(Debug, Clone)]
pub struct RuleResult {
    pub rule: Rule,
    pub attackers: usize,
    /// Attackers of the rule's kinds whose first refusal was this rule's.
    pub found: usize,
    /// Clients this rule refused at least once, and how many of them were attackers.
    pub refused: usize,
    pub refused_attackers: usize,
    pub benign_refused: usize,
    /// Attack requests up to and including the first refusal, per attacker found.
    pub requests: Vec<usize>,
    pub seconds: Vec<f64>,
    /// `apiguard.rule.<id>.blocked` from Envoy's stats.
    pub counter: f64,
}

impl RuleResult {
    pub fn recall(&self) -> f64 {
        ratio(self.found, self.attackers)
    }

    pub fn precision(&self) -> f64 {
        ratio(self.refused_attackers, self.refused)
    }
}

/// `n / of`, 1 when `of` is 0 (nothing to find, or nothing refused: no miss, no error).
fn ratio(n: usize, of: usize) -> f64 {
    if of == 0 {
        1.0
    } else {
        n as f64 / of as f64
    }
}

#[derive(Debug)]
pub struct SimReport {
    pub options: SimOptions,
    pub clients: Vec<ClientRecord>,
    pub rules: Vec<RuleResult>,
    pub elapsed: Duration,
    pub quarantines: f64,
}

impl SimReport {
    pub fn benign_refused(&self) -> usize {
        (self.clients.iter())
            .filter(|c| c.kind == Kind::Benign && c.refused())
            .count()
    }

    /// Exchanges that failed (no status), by benign and attacking clients.
    pub fn failed(&self) -> (usize, usize) {
        let failed = |benign: bool| {
            (self.clients.iter())
                .filter(|c| (c.kind == Kind::Benign) == benign)
                .flat_map(|c| &c.outcomes)
                .filter(|o| o.status.is_none())
                .count()
        };
        (failed(true), failed(false))
    }

    /// Every attacker found by a rule of its row, and no benign client ever refused.
    pub fn passed(&self) -> bool {
        self.benign_refused() == 0 && self.rules.iter().all(|r| r.found == r.attackers)
    }

    /// The markdown report: the run, the table, the checks.
    pub fn markdown(&self) -> String {
        let mut text = String::new();
        let requests: usize = self.clients.iter().map(|c| c.outcomes.len()).sum();
        let benign = (self.clients.iter()).filter(|c| c.kind == Kind::Benign);
        let benign_requests: usize = benign.clone().map(|c| c.outcomes.len()).sum();
        let upstream_errors = |status: u16| {
            (benign.clone())
                .flat_map(|c| &c.outcomes)
                .filter(|o| o.status == Some(status) && o.rule.is_none())
                .count()
        };
        let (failed_benign, failed_attackers) = self.failed();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let _ =
            writeln!(
            text,
            "Seed {seed}, {benign} benign clients and {attackers} attackers ({per} of each kind), \
             {secs:.0} s, Envoy with {workers} workers: {requests} requests ({benign_requests} \
             benign, of which {notfound} answered 404 and {unauthorized} 401 by the upstream); \
             {quarantines} quarantines started; failed exchanges: {failed_benign} benign, \
             {failed_attackers} attackers' (load average at the end: {load}).\n",
            seed = self.options.seed,
            benign = self.options.benign,
            attackers = self.options.attackers_per_kind * Kind::ATTACKERS.len(),
            per = self.options.attackers_per_kind,
            secs = self.elapsed.as_secs_f64(),
            workers = self.options.concurrency,
            notfound = upstream_errors(404),
            unauthorized = upstream_errors(401),
            quarantines = self.quarantines,
            load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        );
        text.push_str(
            "| rule | attackers | found when | recall | precision | benign clients refused | \
             attack requests to the first refusal (min / median / max) | seconds (max) | \
             blocked (Envoy counter) |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rules {
            let kinds: Vec<String> = (r.rule.attackers.iter())
                .map(|k| format!("{} × {}", self.options.attackers_per_kind, k.name()))
                .collect();
            let _ = writeln!(
                text,
                "| `{id}` | {kinds} | {when} | {found}/{all} = {recall:.2} | {precise}/{refused} = \
                 {precision:.2} | {benign} | {requests} | {seconds} | {counter} |",
                id = r.rule.id,
                kinds = kinds.join(", "),
                when = r.rule.found_when,
                found = r.found,
                all = r.attackers,
                recall = r.recall(),
                precise = r.refused_attackers,
                refused = r.refused,
                precision = r.precision(),
                benign = r.benign_refused,
                requests = spread(&r.requests),
                seconds = (r.seconds.iter().copied())
                    .reduce(f64::max)
                    .map_or("–".to_owned(), |s| format!("{s:.1}")),
                counter = r.counter,
            );
        }
        let _ = writeln!(
            text,
            "\n{} benign clients refused; every attacker found by its rule: {}.",
            self.benign_refused(),
            if self.rules.iter().all(|r| r.found == r.attackers) {
                "yes"
            } else {
                "NO"
            }
        );
        for client in &self.clients {
            match (client.kind, client.first_refusal()) {
                (Kind::Benign, Some((rule, _, after))) => {
                    let _ = writeln!(
                        text,
                        "benign {} refused by {rule} {:.1} s into its session",
                        client.name,
                        after.as_secs_f64()
                    );
                }
                (Kind::Benign, None) => {}
                (kind, None) => {
                    let _ = writeln!(text, "{} {} never refused", kind.name(), client.name);
                }
                (kind, Some((rule, _, _))) if !expected(kind).contains(&rule) => {
                    let _ = writeln!(
                        text,
                        "{} {} refused first by {rule}",
                        kind.name(),
                        client.name
                    );
                }
                _ => {}
            }
        }
        text
    }
}

/// The rules that may find `kind` (its rows).
fn expected(kind: Kind) -> Vec<&'static str> {
    (RULES.iter())
        .filter(|r| r.attackers.contains(&kind))
        .map(|r| r.id)
        .collect()
}

/// `min / median / max`, or `–`.
fn spread(values: &[usize]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match (sorted.first(), sorted.last()) {
        (Some(min), Some(max)) => format!("{min} / {} / {max}", sorted[sorted.len() / 2]),
        _ => "–".to_owned(),
    }
}

/// Runs the simulation; the filter must be built ([`crate::locate::build_filter`]).
pub fn run(options: &SimOptions) -> Result<SimReport, Error> {
    let upstream = EchoUpstream::start_answering(answer)?;
    let envoy = Envoy::start(
        &EnvoyOptions {
            policy: Policy::Bundle(policy(options.slots)),
            concurrency: options.concurrency,
            ready_timeout: Duration::from_secs(120),
            downstream: Downstream {
                xff_num_trusted_hops: 1,
                ..Downstream::default()
            },
            ..EnvoyOptions::default()
        },
        upstream.addr(),
    )?;
    let mut kinds = vec![Kind::Benign; options.benign];
    for kind in Kind::ATTACKERS {
        kinds.extend(std::iter::repeat_n(kind, options.attackers_per_kind));
    }
    let started = Instant::now();
    let deadline = started + options.duration;
    let records = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (kinds.into_iter().enumerate())
        .map(|(i, kind)| {
            let records = Arc::clone(&records);
            let listener = envoy.listener();
            let mut rng = Rng(options.seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F));
            // Attackers start within the first fifth of the run, among benign clients
            // that start at once.
            let fifth = options.duration.as_millis() as u64 / 5;
            let delay = match kind {
                Kind::Benign => rng.millis(0, 1000),
                _ => rng.millis(0, fifth.max(1)),
            };
            std::thread::spawn(move || {
                let record = drive(i, kind, rng, listener, started, delay, deadline);
                records
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(record);
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = started.elapsed();
    let mut clients = std::mem::take(&mut *records.lock().unwrap_or_else(PoisonError::into_inner));
    clients.sort_by_key(|c| c.index);
    let stats = envoy.stats()?;
    let counter = |name: &str| stats.wasm_counter(name).unwrap_or(0.0);
    let rules = (RULES.iter())
        .map(|rule| {
            measure(
                *rule,
                &clients,
                counter(&format!("apiguard.rule.{}.blocked", rule.id)),
            )
        })
        .collect();
    Ok(SimReport {
        options: options.clone(),
        clients,
        rules,
        elapsed,
        quarantines: counter("apiguard.abuse.quarantines_started"),
    })
}

fn measure(rule: Rule, clients: &[ClientRecord], counter: f64) -> RuleResult {
    let mine = |c: &&ClientRecord| rule.attackers.contains(&c.kind);
    let found: Vec<(usize, Duration)> = (clients.iter().filter(mine))
        .filter_map(|c| c.first_refusal())
        .filter(|(first, _, _)| *first == rule.id)
        .map(|(_, requests, seconds)| (requests, seconds))
        .collect();
    let refused: Vec<&ClientRecord> = clients.iter().filter(|c| c.refused_by(rule.id)).collect();
    RuleResult {
        rule,
        attackers: clients.iter().filter(mine).count(),
        found: found.len(),
        refused: refused.len(),
        refused_attackers: refused.iter().filter(|c| c.kind != Kind::Benign).count(),
        benign_refused: refused.iter().filter(|c| c.kind == Kind::Benign).count(),
        requests: found.iter().map(|(requests, _)| *requests).collect(),
        seconds: found.iter().map(|(_, s)| s.as_secs_f64()).collect(),
        counter,
    }
}

/// One client's thread: its script until the deadline (an attacker: until a few requests
/// after its first refusal, or its budget).
fn drive(
    i: usize,
    kind: Kind,
    rng: Rng,
    listener: SocketAddr,
    started: Instant,
    delay: Duration,
    deadline: Instant,
) -> ClientRecord {
    // 198.18.0.0/15, the benchmarking range: no address says what the client is.
    let address = format!("198.18.{}.{}", i / 250, i % 250 + 1);
    let name = format!("user-{i}");
    let mut record = ClientRecord {
        index: i,
        kind,
        name: name.clone(),
        address: address.clone(),
        outcomes: Vec::new(),
    };
    let Ok(client) = Client::new(listener, HttpVersion::Http1) else {
        return record;
    };
    let bearer = format!("Bearer {}", token(SECRET, &name));
    let mut script = Script::new(kind, name, rng);
    std::thread::sleep(delay);
    let mut after = 0;
    while Instant::now() < deadline && (kind == Kind::Benign || script.sent < ATTACK_BUDGET) {
        let (step, pause) = script.next();
        let outcome = send(&client, &address, &bearer, &step, started);
        let refused = outcome.rule.is_some();
        record.outcomes.push(outcome);
        if kind != Kind::Benign && (refused || after > 0) {
            after += 1;
            if after > AFTER_DETECTION {
                break;
            }
        }
        std::thread::sleep(pause);
    }
    record
}

fn send(client: &Client, address: &str, bearer: &str, step: &Step, started: Instant) -> Outcome {
    let mut request = Request::builder()
        .method(step.method)
        .uri(step.target.as_str())
        .header("user-agent", "apiguard-behaviour-sim/1")
        .header("x-forwarded-for", address)
        .header("authorization", bearer);
    if step.body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = step
        .body
        .as_ref()
        .map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let response = request
        .body(body)
        .map_err(Error::from)
        .and_then(|request| client.send(request));
    let (status, rule) = match response {
        Ok(response) => {
            let problem = response.header("content-type") == Some("application/problem+json");
            let rule = problem
                .then(|| response.json().ok())
                .flatten()
                .and_then(|p| p["rule"].as_str().map(str::to_owned));
            (Some(response.status.as_u16()), rule)
        }
        Err(_) => (None, None),
    };
    Outcome {
        attack: step.attack,
        at: started.elapsed(),
        status,
        rule,
    }
}

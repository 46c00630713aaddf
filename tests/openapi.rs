//! Issue 14, the OpenAPI description docs/openapi.json: the gateway serves
//! it at `GET /api/v1/openapi.json`; every route of the code is in it; and
//! real answers of a running gateway to every operation, errors included
//! (401, 403, 404, 409, 429; WHEP's 400, 404, 415, 422, 503 and its 201
//! to a real WebRTC offer), match it: the status is documented for that
//! operation, the body validates against the response's schema (JSON
//! Schema draft 2020-12, `$ref`s to `#/components/...` resolved in the
//! document), the Content-Type is documented and the required headers are
//! there. Every documented status of every operation is met at least once,
//! so neither the document nor the code can drift from the other. Runs in
//! a loopback-only network namespace (WebRTC, see tests/common/viewer.rs).

mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;
use viewer::{in_loopback_netns, make_offer, runtime, OfferKind};

const ADMIN: &str = "admin-token-0123456789abcdef";
/// Role viewer, camera `good` only.
const VIEWER: &str = "viewer-token-0123456789abcdef";
const METRICS: &str = "metrics-token-0123456789abcdef";

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .expect("docs/openapi.json is not JSON")
}

/// Follows a `$ref` to `#/components/...` (responses may be references).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("only local $refs");
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{r} leads nowhere"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// Validates `instance` against `schema`, a schema of the document whose
/// `$ref`s point into the document's components: the schema is validated
/// as the root of a resource that carries those components.
fn validate(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut root = serde_json::Map::new();
    root.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    root.insert("components".into(), doc["components"].clone());
    root.insert("allOf".into(), Value::Array(vec![schema.clone()]));
    let validator = jsonschema::draft202012::options()
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("invalid schema {schema}: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
        .collect()
}

/// Whether request path `path` fits template `template` (`{x}` matches a
/// non-empty segment part).
fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| match (t.find('{'), t.find('}')) {
                (Some(a), Some(b)) => {
                    let (prefix, suffix) = (&t[..a], &t[b + 1..]);
                    p.len() > prefix.len() + suffix.len()
                        && p.starts_with(prefix)
                        && p.ends_with(suffix)
                }
                _ => t == p,
            })
}

/// The gateway under test and the operations and statuses met so far.
struct Api {
    doc: Value,
    port: u16,
    met: BTreeSet<(String, String, String)>,
}

impl Api {
    /// `method path` with `token` (if any) from 127.0.0.1, or from
    /// `source`; checks the reply against the document.
    fn call_from(
        &mut self,
        source: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(b) = &bearer {
            all.push(("Authorization", b));
        }
        let reply = match source {
            None => request(self.port, method, path, &all, body),
            Some(source) => {
                let mut s = connect_from(source, self.port);
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                request_on(&mut s, method, path, &all, body)
            }
        };
        self.check(method, path, &reply);
        reply
    }

    fn call(&mut self, method: &str, path: &str, token: Option<&str>) -> Reply {
        self.call_from(None, method, path, token, &[], b"")
    }

    /// Checks `reply` to `method path` against the document.
    fn check(&mut self, method: &str, path: &str, reply: &Reply) {
        let doc = self.doc.clone();
        let bare = path.split('?').next().unwrap();
        let mut templates: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        // Literal paths before templated ones.
        templates.sort_by_key(|t| t.matches('{').count());
        let template = templates
            .into_iter()
            .find(|t| fits(t, bare))
            .unwrap_or_else(|| panic!("{method} {path}: no such path in docs/openapi.json"));
        let what = format!("{method} {path} ({template}) answered {}", reply.status);
        let op = doc["paths"][template]
            .get(method.to_lowercase())
            .unwrap_or_else(|| panic!("{what}: the method is not documented"));
        let status = reply.status.to_string();
        let response = op["responses"]
            .get(&status)
            .map(|r| resolve(&doc, r))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: status not documented for the operation: {}\n{}",
                    reply.head, reply.body
                )
            });
        match response.get("content").and_then(Value::as_object) {
            Some(content) => {
                let ct = reply.header("content-type").unwrap_or_default();
                let media = ct.split(';').next().unwrap().trim().to_owned();
                let schema = &content
                    .get(&media)
                    .unwrap_or_else(|| panic!("{what}: Content-Type {ct:?} not documented"))
                    ["schema"];
                let instance = if media == "application/json" {
                    serde_json::from_str(&reply.body)
                        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", reply.body))
                } else {
                    Value::String(reply.body.clone())
                };
                let errors = validate(&doc, schema, &instance);
                assert!(
                    errors.is_empty(),
                    "{what}: the body does not match docs/openapi.json: {errors:#?}\n{}",
                    reply.body
                );
            }
            None => assert!(
                reply.body.is_empty(),
                "{what}: documented without a body, has one: {}",
                reply.body
            ),
        }
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            match reply.header(name) {
                Some(value) => {
                    let errors = validate(&doc, &header["schema"], &Value::String(value.clone()));
                    assert!(
                        errors.is_empty(),
                        "{what}: header {name}: {value:?}: {errors:?}"
                    );
                }
                None => assert!(
                    header["required"] != true,
                    "{what}: no {name} header: {}",
                    reply.head
                ),
            }
        }
        self.met
            .insert((template.clone(), method.to_lowercase(), status));
    }

    /// Every documented operation: (template, method).
    fn operations(&self) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    ops.push((template.clone(), method.clone()));
                }
            }
        }
        ops
    }
}

/// `template` with its parameters set: the camera id to `camera`, session
/// ids to one that does not exist.
fn concrete(template: &str, camera: &str) -> String {
    template
        .replace("{id}", camera)
        .replace("{camera}", camera)
        .replace("{sid}", "no-such-session")
        .replace("{session}", "no-such-session")
}

#[test]
fn the_document_is_well_formed() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every schema is a valid draft 2020-12 schema and every $ref leads
    // somewhere.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(
            jsonschema::meta::is_valid(schema),
            "schema {name} is not valid JSON Schema"
        );
    }
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("remote $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} leads nowhere");
    }
    // Operation ids are unique; every response object has a description.
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            for (status, r) in op["responses"].as_object().unwrap() {
                let r = resolve(&doc, r);
                assert!(
                    r["description"].is_string(),
                    "{id} {status}: no description"
                );
            }
        }
    }
}

/// The paths the gateway routes (`.route("...")` in src/, but for the
/// simulator's), parameters as `{}`.
fn code_routes() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // The simulator's servers (RTSP, ONVIF) are not the gateway's.
                if !path.ends_with("sim") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices(".route(") {
                    let rest = text[i + 7..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"') {
                        out.insert(params(&lit[..lit.find('"').unwrap()]));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// `path` with each `{name}` as `{}`.
fn params(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn every_route_of_the_code_is_documented() {
    let doc = document();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| params(p))
        .collect();
    let mut code = code_routes();
    assert!(code.len() >= 10, "{code:?}");
    // The browser dashboard's pages are not API; `/cameras/{file}` serves
    // both a camera's page and its SDP file, `/cameras/{id}.sdp`.
    for page in ["/", "/assets/{}", "/cameras/{}"] {
        assert!(code.remove(page), "the code no longer routes {page}");
    }
    code.insert("/cameras/{}.sdp".into());
    assert_eq!(
        code, documented,
        "the routes of src/ and the paths of docs/openapi.json differ"
    );
}

#[test]
fn api_answers_match_the_openapi_document() {
    if in_loopback_netns("api_answers_match_the_openapi_document") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let rtp = free_rtp_port();
    let _consumer = FlowWatch::udp(rtp);
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:{http}"

[auth]
max_failures = 1
lockout = 600

[[auth.token]]
name = "admin"
token = "{ADMIN}"
role = "admin"

[[auth.token]]
name = "lobby screen"
token = "{VIEWER}"
role = "viewer"
cameras = ["good"]

[[auth.token]]
name = "prometheus"
token = "{METRICS}"
role = "metrics"

[webrtc]
udp_listen = "127.0.0.1:0"
max_viewers_per_camera = 1

[[camera]]
id = "good"
url = "sim://good"

[[camera.rtp_out]]
destination = "127.0.0.1:{rtp}"

[[camera]]
id = "off"
url = "sim://off"
enabled = false
"#
    );
    let _gw = spawn_gateway_checked(dir.path(), &toml, http);
    let admin_header = format!("Bearer {ADMIN}");
    wait_state_with(
        http,
        "good",
        "playing",
        &[("Authorization", &admin_header)],
        Duration::from_secs(20),
    );
    let mut api = Api {
        doc: document(),
        port: http,
        met: BTreeSet::new(),
    };
    let admin = Some(ADMIN);

    // The document served is the one in the repository.
    let r = api.call("GET", "/api/v1/openapi.json", admin);
    assert_eq!(r.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), api.doc);

    // Access control, on every operation but the CORS preflights: no
    // credentials, 401; a role or camera not allowed, 403; an address
    // locked out after a wrong token, 429.
    let operations: Vec<(String, String)> = api
        .operations()
        .into_iter()
        .filter(|(_, m)| m != "options")
        .collect();
    for (template, method) in &operations {
        let method = method.to_uppercase();
        let r = api.call(&method, &concrete(template, "good"), None);
        assert_eq!(r.status, 401, "{method} {template}: {r:?}");
        // The viewer may watch `good` only and change nothing; the metrics
        // role may only read /metrics.
        let token = if template.contains('{') || method != "GET" || template == "/metrics" {
            VIEWER
        } else {
            METRICS
        };
        let r = api.call(&method, &concrete(template, "off"), Some(token));
        assert_eq!(r.status, 403, "{method} {template}: {r:?}");
    }
    let r = api.call_from(
        Some("127.0.0.2"),
        "GET",
        "/api/v1/cameras",
        Some("wrong-token-0123456789abcdef"),
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
    for (template, method) in &operations {
        let method = method.to_uppercase();
        let path = concrete(template, "good");
        let r = api.call_from(Some("127.0.0.2"), &method, &path, admin, &[], b"");
        assert_eq!(r.status, 429, "{method} {template}: {r:?}");
    }

    // Cameras.
    let r = api.call("GET", "/api/v1/cameras", admin);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A viewer sees only its cameras.
    let r = api.call("GET", "/api/v1/cameras", Some(VIEWER));
    assert_eq!(
        serde_json::from_str::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(api.call("GET", "/api/v1/cameras/good", admin).status, 200);
    assert_eq!(api.call("GET", "/api/v1/cameras/off", admin).status, 200);
    assert_eq!(api.call("GET", "/api/v1/cameras/nosuch", admin).status, 404);
    let json = [("Content-Type", "application/json")];
    let post = |api: &mut Api, body: &str| {
        api.call_from(
            None,
            "POST",
            "/api/v1/cameras",
            admin,
            &json,
            body.as_bytes(),
        )
    };
    let r = post(&mut api, r#"{"id": "added", "url": "sim://added"}"#);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(post(&mut api, "not json").status, 400);
    assert_eq!(
        post(&mut api, r#"{"id": "bad id!", "url": "sim://x"}"#).status,
        400
    );
    assert_eq!(
        post(&mut api, r#"{"id": "good", "url": "sim://x"}"#).status,
        409
    );
    assert_eq!(
        api.call("DELETE", "/api/v1/cameras/added", admin).status,
        204
    );
    assert_eq!(
        api.call("DELETE", "/api/v1/cameras/added", admin).status,
        404
    );
    assert_eq!(
        api.call("POST", "/api/v1/cameras/good/restart", admin)
            .status,
        202
    );
    assert_eq!(
        api.call("POST", "/api/v1/cameras/off/restart", admin)
            .status,
        409
    );
    assert_eq!(
        api.call("POST", "/api/v1/cameras/nosuch/restart", admin)
            .status,
        404
    );
    wait_state_with(
        http,
        "good",
        "playing",
        &[("Authorization", &admin_header)],
        Duration::from_secs(20),
    );

    // Health, the SDP file, the metrics.
    wait_for(Duration::from_secs(10), || {
        let r = request(
            http,
            "GET",
            "/api/v1/health/good",
            &[("Authorization", &admin_header)],
            b"",
        );
        r.body.contains("\"bitrate_bps\":[") && !r.body.contains("\"bitrate_bps\":[]")
    });
    assert_eq!(api.call("GET", "/api/v1/health", admin).status, 200);
    // A gateway that runs alone: 404 (the 200 needs etcd: tests/cluster.rs).
    assert_eq!(api.call("GET", "/api/v1/cluster", admin).status, 404);
    assert_eq!(api.call("GET", "/api/v1/health/good", admin).status, 200);
    assert_eq!(api.call("GET", "/api/v1/health/nosuch", admin).status, 404);
    assert_eq!(api.call("GET", "/cameras/good.sdp", admin).status, 200);
    assert_eq!(
        api.call("GET", "/cameras/good.sdp?out=3", admin).status,
        404
    );
    assert_eq!(api.call("GET", "/cameras/nosuch.sdp", admin).status, 404);
    assert_eq!(api.call("GET", "/metrics", admin).status, 200);
    assert_eq!(api.call("GET", "/metrics", Some(METRICS)).status, 200);

    // WHEP. Errors first: with one viewer allowed per camera, a second
    // offer is refused before it is read.
    let sdp = [("Content-Type", "application/sdp")];
    let rt = runtime();
    let (_pc, offer) = rt.block_on(make_offer(OfferKind::Default));
    let (_pc8, vp8) = rt.block_on(make_offer(OfferKind::Vp8Only));
    let whep = |api: &mut Api, camera: &str, headers: &[(&str, &str)], body: &[u8]| {
        api.call_from(
            None,
            "POST",
            &format!("/whep/{camera}"),
            admin,
            headers,
            body,
        )
    };
    assert_eq!(whep(&mut api, "nosuch", &sdp, offer.as_bytes()).status, 404);
    let text = [("Content-Type", "text/plain")];
    assert_eq!(whep(&mut api, "good", &text, offer.as_bytes()).status, 415);
    assert_eq!(whep(&mut api, "good", &sdp, b"v=0\r\n\xff\xfe").status, 400);
    assert_eq!(whep(&mut api, "good", &sdp, vp8.as_bytes()).status, 422);
    let r = whep(&mut api, "good", &sdp, offer.as_bytes());
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").unwrap();
    let (_pc2, offer2) = rt.block_on(make_offer(OfferKind::Default));
    assert_eq!(whep(&mut api, "good", &sdp, offer2.as_bytes()).status, 503);
    let origin = [("Origin", "https://vms.example")];
    let r = api.call_from(None, "OPTIONS", "/whep/good", None, &origin, b"");
    assert_eq!(r.status, 204);
    let r = api.call_from(None, "OPTIONS", &location, None, &origin, b"");
    assert_eq!(r.status, 204);
    assert_eq!(api.call("PATCH", &location, admin).status, 405);

    // Sessions: the viewer and the RTP output.
    let r = api.call("GET", "/api/v1/cameras/good/sessions", admin);
    let sessions: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    let kinds: BTreeSet<&str> = sessions.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["rtp", "viewer"]), "{sessions:?}");
    assert_eq!(
        api.call("GET", "/api/v1/cameras/nosuch/sessions", admin)
            .status,
        404
    );
    assert_eq!(api.call("DELETE", &location, admin).status, 200);
    assert_eq!(
        api.call("DELETE", "/whep/good/no-such-session", admin)
            .status,
        404
    );
    let rtp_session = sessions.iter().find(|s| s["kind"] == "rtp").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/cameras/good/sessions/{rtp_session}");
    assert_eq!(api.call("DELETE", &path, admin).status, 204);
    assert_eq!(
        api.call("DELETE", "/api/v1/cameras/good/sessions/nosuch", admin)
            .status,
        404
    );
    assert_eq!(
        api.call("DELETE", "/api/v1/cameras/nosuch/sessions/x", admin)
            .status,
        404
    );

    // Every documented answer of every operation was met.
    let mut unmet = Vec::new();
    for (template, method) in api.operations() {
        let op = &api.doc["paths"][&template][&method];
        for status in op["responses"].as_object().unwrap().keys() {
            let key = (template.clone(), method.clone(), status.clone());
            // The cluster answer needs a running etcd; tests/cluster.rs
            // reads it from real nodes.
            let needs_etcd = template == "/api/v1/cluster" && status == "200";
            if status != "default" && !needs_etcd && !api.met.contains(&key) {
                unmet.push(key);
            }
        }
    }
    assert!(unmet.is_empty(), "documented but never met: {unmet:?}");
}

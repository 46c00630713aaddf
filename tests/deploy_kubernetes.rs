//! The Kubernetes example in deploy/kubernetes: every manifest parses
//! (YAML, several documents per file) into objects that reference each
//! other consistently (Service selectors and ports, StatefulSets and their
//! governing Services, ConfigMaps, Secrets and their keys, volumes, probe
//! ports, `$(VAR)` references, the etcd members), and the cameras.toml in
//! the ConfigMap is a cluster configuration that camgate's own parser
//! accepts with the environment a pod gets, naming the ports the pods open.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// One Kubernetes object and the file it is in.
struct Object {
    file: String,
    value: Value,
}

impl Object {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    fn what(&self) -> String {
        format!("{} {} ({})", self.kind(), self.name(), self.file)
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every object of every `*.yaml` in deploy/kubernetes, in file order.
fn objects() -> Vec<Object> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifest in deploy/kubernetes");
    let mut out = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            if value.is_null() {
                continue;
            }
            out.push(Object {
                file: file.clone(),
                value,
            });
        }
    }
    out
}

fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> Option<&'a Object> {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
}

fn of_kind<'a>(objects: &'a [Object], kind: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
    objects.iter().filter(move |o| o.kind() == kind)
}

/// Whether every `key: value` of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let (Some(selector), Some(labels)) = (selector.as_object(), labels.as_object()) else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The workloads (StatefulSets) whose pods `selector` selects.
fn selected<'a>(objects: &'a [Object], selector: &Value) -> Vec<&'a Object> {
    of_kind(objects, "StatefulSet")
        .filter(|s| selects(selector, &s.value["spec"]["template"]["metadata"]["labels"]))
        .collect()
}

fn containers(workload: &Object) -> &Vec<Value> {
    workload.value["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no containers", workload.what()))
}

/// The container port `target` names (a port name or number) in
/// `workload`'s pods: (number, protocol).
fn container_port(workload: &Object, target: &Value) -> Option<(u64, String)> {
    containers(workload)
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| match target {
            Value::String(name) => p["name"].as_str() == Some(name),
            Value::Number(n) => p["containerPort"].as_u64() == n.as_u64(),
            _ => false,
        })
        .map(|p| {
            (
                p["containerPort"].as_u64().unwrap(),
                p["protocol"].as_str().unwrap_or("TCP").to_owned(),
            )
        })
}

#[test]
fn every_manifest_is_a_named_object_of_a_known_kind() {
    let objects = objects();
    let api = BTreeMap::from([
        ("ConfigMap", "v1"),
        ("Secret", "v1"),
        ("Service", "v1"),
        ("StatefulSet", "apps/v1"),
        ("PodDisruptionBudget", "policy/v1"),
        ("NetworkPolicy", "networking.k8s.io/v1"),
    ]);
    let mut seen = BTreeSet::new();
    for o in &objects {
        let want = api
            .get(o.kind())
            .unwrap_or_else(|| panic!("{}: a kind this test does not check", o.what()));
        assert_eq!(o.value["apiVersion"], *want, "{}", o.what());
        assert!(
            !o.name().is_empty(),
            "an object without a name in {}",
            o.file
        );
        assert!(
            seen.insert((o.kind().to_owned(), o.name().to_owned())),
            "{} twice",
            o.what()
        );
    }
    for (kind, name) in [
        ("StatefulSet", "etcd"),
        ("StatefulSet", "camgate"),
        ("ConfigMap", "camgate-config"),
        ("Service", "etcd"),
        ("Service", "camgate"),
    ] {
        assert!(find(&objects, kind, name).is_some(), "no {kind} {name}");
    }
}

/// Services select the pods of a workload and name ports those pods open
/// with the same protocol; each StatefulSet selects its own pods and is
/// governed by a headless Service that selects them; disruption budgets
/// and network policies select pods that exist and name their ports.
#[test]
fn services_and_selectors_match_the_pods() {
    let objects = objects();
    for svc in of_kind(&objects, "Service") {
        let selector = &svc.value["spec"]["selector"];
        let workloads = selected(&objects, selector);
        assert!(!workloads.is_empty(), "{} selects no pods", svc.what());
        let ports = svc.value["spec"]["ports"].as_array().unwrap();
        assert!(!ports.is_empty(), "{}", svc.what());
        for p in ports {
            let target = match &p["targetPort"] {
                Value::Null => p["port"].clone(),
                t => t.clone(),
            };
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            for w in &workloads {
                let found = container_port(w, &target).unwrap_or_else(|| {
                    panic!("{}: {w_}: no port {target}", svc.what(), w_ = w.what())
                });
                assert_eq!(found.1, protocol, "{} port {target}", svc.what());
            }
        }
    }
    for sts in of_kind(&objects, "StatefulSet") {
        let spec = &sts.value["spec"];
        let labels = &spec["template"]["metadata"]["labels"];
        assert!(
            selects(&spec["selector"]["matchLabels"], labels),
            "{}: its selector does not match its pods",
            sts.what()
        );
        let governing = spec["serviceName"].as_str().unwrap();
        let svc = find(&objects, "Service", governing)
            .unwrap_or_else(|| panic!("{}: no Service {governing}", sts.what()));
        assert_eq!(
            svc.value["spec"]["clusterIP"],
            "None",
            "{} is not headless",
            svc.what()
        );
        assert!(
            selects(&svc.value["spec"]["selector"], labels),
            "{}",
            svc.what()
        );
        // Each workload's pods are its own: no other StatefulSet's selector
        // takes them.
        for other in of_kind(&objects, "StatefulSet").filter(|o| o.name() != sts.name()) {
            assert!(
                !selects(&other.value["spec"]["selector"]["matchLabels"], labels),
                "{} selects the pods of {}",
                other.what(),
                sts.what()
            );
        }
    }
    for pdb in of_kind(&objects, "PodDisruptionBudget") {
        let workloads = selected(&objects, &pdb.value["spec"]["selector"]["matchLabels"]);
        assert_eq!(workloads.len(), 1, "{}", pdb.what());
    }
    for np in of_kind(&objects, "NetworkPolicy") {
        let targets = selected(&objects, &np.value["spec"]["podSelector"]["matchLabels"]);
        assert_eq!(targets.len(), 1, "{}", np.what());
        for rule in np.value["spec"]["ingress"].as_array().unwrap() {
            for from in rule["from"].as_array().into_iter().flatten() {
                let peers = selected(&objects, &from["podSelector"]["matchLabels"]);
                assert!(!peers.is_empty(), "{}: {from} selects no pods", np.what());
            }
            for port in rule["ports"].as_array().into_iter().flatten() {
                assert!(
                    container_port(targets[0], &port["port"]).is_some(),
                    "{}: no port {}",
                    np.what(),
                    port["port"]
                );
            }
        }
    }
}

/// The pod's environment as Kubernetes builds it: literal values with
/// `$(VAR)` replaced by variables defined before, the downward API from
/// `pod` (field path → value), Secret and ConfigMap keys from the
/// manifests. Panics on a reference to anything missing.
fn environment(
    objects: &[Object],
    workload: &Object,
    container: &Value,
    pod: &BTreeMap<&str, &str>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(literal) = e["value"].as_str() {
            expand(literal, &env).unwrap_or_else(|v| {
                panic!(
                    "{}: {name} uses $({v}), not defined before it",
                    workload.what()
                )
            })
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            pod.get(path)
                .unwrap_or_else(|| panic!("{}: {name}: field {path}", workload.what()))
                .to_string()
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            key_of(objects, "Secret", &r["name"], &r["key"])
                .unwrap_or_else(|| panic!("{}: {name}: no Secret key {r:?}", workload.what()))
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            key_of(objects, "ConfigMap", &r["name"], &r["key"])
                .unwrap_or_else(|| panic!("{}: {name}: no ConfigMap key {r:?}", workload.what()))
        } else {
            panic!(
                "{}: {name}: a source this test does not know: {e}",
                workload.what()
            );
        };
        env.push((name, value));
    }
    env
}

/// `text` with each `$(VAR)` replaced from `env`; `Err(VAR)` for one not
/// there.
fn expand(text: &str, env: &[(String, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(')').ok_or_else(|| rest.to_owned())? + at;
        let var = &rest[at + 2..end];
        let value = env
            .iter()
            .rev()
            .find(|(n, _)| n == var)
            .ok_or_else(|| var.to_owned())?;
        out.push_str(&value.1);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of `key` in ConfigMap or Secret `name` (`data` or
/// `stringData`; Secret `data` is base64).
fn key_of(objects: &[Object], kind: &str, name: &Value, key: &Value) -> Option<String> {
    let o = find(objects, kind, name.as_str()?)?;
    let key = key.as_str()?;
    if let Some(v) = o.value["stringData"][key].as_str() {
        return Some(v.to_owned());
    }
    let v = o.value["data"][key].as_str()?;
    if kind == "Secret" {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        return String::from_utf8(bytes).ok();
    }
    Some(v.to_owned())
}

/// Volumes name ConfigMaps and keys that exist, mounts name volumes, probes
/// name ports the container opens, and every environment variable
/// resolves (Secrets and their keys, `$(VAR)` defined before use).
#[test]
fn pods_reference_what_exists() {
    let objects = objects();
    let pod = BTreeMap::from([("metadata.name", "pod-0"), ("status.podIP", "10.0.0.1")]);
    for w in of_kind(&objects, "StatefulSet") {
        let spec = &w.value["spec"]["template"]["spec"];
        let mut volumes = BTreeSet::new();
        for v in spec["volumes"].as_array().into_iter().flatten() {
            volumes.insert(v["name"].as_str().unwrap().to_owned());
            if let Some(cm) = v["configMap"].as_object() {
                let name = &cm["name"];
                assert!(
                    find(&objects, "ConfigMap", name.as_str().unwrap()).is_some(),
                    "{}: no ConfigMap {name}",
                    w.what()
                );
                for item in cm
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        key_of(&objects, "ConfigMap", name, &item["key"]).is_some(),
                        "{}: ConfigMap {name} has no key {}",
                        w.what(),
                        item["key"]
                    );
                }
            }
            if let Some(s) = v["secret"]["secretName"].as_str() {
                assert!(
                    find(&objects, "Secret", s).is_some(),
                    "{}: no Secret {s}",
                    w.what()
                );
            }
        }
        for t in w.value["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            volumes.insert(t["metadata"]["name"].as_str().unwrap().to_owned());
        }
        for c in containers(w) {
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap();
                assert!(
                    volumes.contains(name),
                    "{}: mounts no volume {name}",
                    w.what()
                );
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let get = &c[probe]["httpGet"];
                if get.is_object() {
                    assert!(
                        container_port(w, &get["port"]).is_some(),
                        "{}: {probe} on port {}, which it does not open",
                        w.what(),
                        get["port"]
                    );
                }
            }
            let env = environment(&objects, w, c, &pod);
            for arg in c["args"]
                .as_array()
                .into_iter()
                .chain(c["command"].as_array())
                .flatten()
            {
                expand(arg.as_str().unwrap(), &env).unwrap_or_else(|v| {
                    panic!("{}: {arg} uses $({v}), which is not defined", w.what())
                });
            }
        }
    }
}

/// The value of `--flag=value` among `command`.
fn flag<'a>(command: &'a [Value], flag: &str) -> Option<&'a str> {
    command
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix(flag)?.strip_prefix('='))
}

/// The etcd members name themselves after their pods, and the initial
/// cluster lists exactly the StatefulSet's pods at their names under the
/// headless Service, on the peer port they open.
#[test]
fn etcd_members_form_one_cluster() {
    let objects = objects();
    let sts = find(&objects, "StatefulSet", "etcd").unwrap();
    let replicas = sts.value["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas >= 3 && replicas % 2 == 1, "{replicas} members");
    let service = sts.value["spec"]["serviceName"].as_str().unwrap();
    let c = &containers(sts)[0];
    let command: Vec<Value> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["args"].as_array().into_iter().flatten())
        .cloned()
        .collect();
    let (peer, _) = container_port(sts, &Value::from("peer")).unwrap();
    let (client, _) = container_port(sts, &Value::from("client")).unwrap();
    let initial: Vec<String> = (0..replicas)
        .map(|i| format!("etcd-{i}=http://etcd-{i}.{service}:{peer}"))
        .collect();
    assert_eq!(
        flag(&command, "--initial-cluster").unwrap(),
        initial.join(","),
        "{}",
        sts.what()
    );
    assert_eq!(flag(&command, "--name"), Some("$(POD_NAME)"));
    let pod_name = |env: &Value| {
        env.as_array().unwrap().iter().any(|e| {
            e["name"] == "POD_NAME" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        })
    };
    assert!(pod_name(&c["env"]), "POD_NAME is not the pod's name");
    assert_eq!(
        flag(&command, "--initial-advertise-peer-urls"),
        Some(format!("http://$(POD_NAME).{service}:{peer}").as_str())
    );
    assert_eq!(
        flag(&command, "--advertise-client-urls"),
        Some(format!("http://$(POD_NAME).{service}:{client}").as_str())
    );
    assert_eq!(
        flag(&command, "--listen-client-urls"),
        Some(format!("http://0.0.0.0:{client}").as_str())
    );
    assert_eq!(
        flag(&command, "--listen-peer-urls"),
        Some(format!("http://0.0.0.0:{peer}").as_str())
    );
    // Members find each other before any is ready.
    let svc = find(&objects, "Service", service).unwrap();
    assert_eq!(svc.value["spec"]["publishNotReadyAddresses"], true);
}

/// The ConfigMap's cameras.toml, parsed by camgate as pod camgate-1 sees
/// it (its environment from the StatefulSet: the pod name and IP, the
/// Secret's tokens and password): a cluster configuration whose node id is
/// the pod name, whose advertised URLs are the pod's address on the ports
/// the pod opens, whose etcd endpoints are the etcd pods' client ports;
/// the probes authenticate with a token that sees no camera; the grace
/// period leaves time to hand cameras over.
///
/// The only test here that touches the process environment.
#[test]
fn cameras_toml_is_a_cluster_config_as_each_pod_sees_it() {
    let objects = objects();
    let sts = find(&objects, "StatefulSet", "camgate").unwrap();
    assert_eq!(sts.value["spec"]["replicas"], 3);
    let spec = &sts.value["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= 45,
        "{grace} s to hand cameras over (about 30 s) and exit"
    );
    let c = &containers(sts)[0];

    // The file camgate is told to read is the ConfigMap's key.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "--config").unwrap();
    assert_eq!(args[at - 1], "run", "{args:?}");
    let path = Path::new(args[at + 1]);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is on no volume", path.display()));
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let key = path
        .strip_prefix(mount["mountPath"].as_str().unwrap())
        .unwrap()
        .to_str()
        .unwrap();
    let item = volume["configMap"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == key)
        .unwrap_or_else(|| panic!("the ConfigMap volume has no {key}"));
    let text = key_of(
        &objects,
        "ConfigMap",
        &volume["configMap"]["name"],
        &item["key"],
    )
    .unwrap();

    let pod = BTreeMap::from([
        ("metadata.name", "camgate-1"),
        ("status.podIP", "10.244.1.7"),
    ]);
    let env = environment(&objects, sts, c, &pod);
    for (name, value) in &env {
        std::env::set_var(name, value);
    }
    let config = camgate::config::Config::parse(&text, path.to_str().unwrap())
        .unwrap_or_else(|e| panic!("the ConfigMap's cameras.toml: {e}"));

    let port = |name: &str, protocol: &str| {
        let (n, p) = container_port(sts, &Value::from(name))
            .unwrap_or_else(|| panic!("the pod opens no port {name}"));
        assert_eq!(p, protocol, "port {name}");
        u16::try_from(n).unwrap()
    };
    assert_eq!(config.server.listen.port(), port("http", "TCP"));
    assert!(config.server.listen.ip().is_unspecified());
    assert!(config.rtsp_server.enabled);
    assert_eq!(config.rtsp_server.listen.port(), port("rtsp", "TCP"));
    assert_eq!(config.webrtc.udp_listen.port(), port("webrtc", "UDP"));

    let cluster = config.cluster.as_ref().expect("a [cluster] section");
    assert_eq!(cluster.node_id, "camgate-1");
    assert_eq!(
        cluster.advertise_url.as_str(),
        format!("http://10.244.1.7:{}/", port("http", "TCP"))
    );
    assert_eq!(
        cluster.advertise_rtsp.as_ref().map(|u| u.as_str()),
        Some(format!("rtsp://10.244.1.7:{}", port("rtsp", "TCP")).as_str())
    );
    assert_eq!(cluster.lease_ttl, Duration::from_secs(3));
    assert_eq!(cluster.prefix, "/camgate/");
    // Every etcd member, by its name under etcd's headless Service, on the
    // client port it opens.
    let etcd = find(&objects, "StatefulSet", "etcd").unwrap();
    let members = etcd.value["spec"]["replicas"].as_u64().unwrap();
    let service = etcd.value["spec"]["serviceName"].as_str().unwrap();
    let (client, _) = container_port(etcd, &Value::from("client")).unwrap();
    let expected: Vec<String> = (0..members)
        .map(|i| format!("http://etcd-{i}.{service}:{client}/"))
        .collect();
    let endpoints: Vec<String> = cluster.etcd.iter().map(|u| u.to_string()).collect();
    assert_eq!(endpoints, expected);
    assert!(cluster.tls.is_none() && cluster.credentials.is_none());

    // Credentials from the Secret reached the parsed configuration.
    let secret = |key: &str| {
        key_of(
            &objects,
            "Secret",
            &Value::from("camgate-secrets"),
            &Value::from(key),
        )
        .unwrap()
    };
    let token = |name: &str| {
        config
            .auth
            .tokens
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no token {name}"))
    };
    assert_eq!(token("operator").token.expose(), secret("admin-token"));
    assert_eq!(token("operator").role, camgate::config::Role::Admin);
    assert_eq!(token("prometheus").token.expose(), secret("metrics-token"));
    assert_eq!(token("prometheus").role, camgate::config::Role::Metrics);
    assert!(!config.cameras.is_empty());
    for cam in &config.cameras {
        let creds = cam.credentials.as_ref().expect("camera credentials");
        assert_eq!(
            creds.password.expose(),
            secret("camera-password"),
            "{}",
            cam.id
        );
    }

    // The probes: GET /api/v1/health on the HTTP port, with a token that
    // is a viewer of no camera.
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/api/v1/health", "{probe}");
        assert_eq!(get["port"], "http", "{probe}");
        let header = get["httpHeaders"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["name"] == "Authorization")
            .unwrap_or_else(|| panic!("{probe} sends no credentials"));
        let bearer = header["value"]
            .as_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        let t = config
            .auth
            .tokens
            .iter()
            .find(|t| t.token.expose() == bearer)
            .unwrap_or_else(|| panic!("{probe}'s token is not configured"));
        assert_eq!(t.role, camgate::config::Role::Viewer, "{probe}");
        assert_eq!(
            t.cameras.as_deref(),
            Some(&[][..]),
            "{probe}'s token sees cameras"
        );
    }

    // API cameras are kept off the read-only configuration volume.
    let state = env
        .iter()
        .find(|(n, _)| n == "STATE_DIRECTORY")
        .map(|(_, v)| v.as_str())
        .expect("STATE_DIRECTORY");
    assert!(!state.starts_with(mount["mountPath"].as_str().unwrap()));
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == state && m["readOnly"] != true),
        "{state} is not a writable volume"
    );
}

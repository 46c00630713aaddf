//! `[cluster]`: several gateways sharing the cameras of one `cameras.toml`
//! through etcd (see `crate::cluster`). Absent, camgate runs alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::raw::Number;
use super::validate::{EnvLookup, Source};
use super::ConfigError;
use crate::credentials::Secret;

/// `[cluster]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub etcd: Option<Spanned<Vec<Spanned<String>>>>,
    pub node_id: Option<Spanned<String>>,
    pub advertise_url: Option<Spanned<String>>,
    pub advertise_rtsp: Option<Spanned<String>>,
    pub lease_ttl: Option<Spanned<Number>>,
    pub prefix: Option<Spanned<String>>,
    pub max_cameras: Option<Spanned<i64>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub credentials_file: Option<Spanned<String>>,
    /// Refused with a sentence: the password never goes in the file.
    pub password: Option<Spanned<toml::Value>>,
}

/// TLS towards etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificate(s) that sign etcd's server certificate (PEM); the
    /// system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), when etcd asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// `[cluster]`, checked, with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd endpoints (`http://` or `https://`).
    pub etcd: Vec<Url>,
    /// This node's name: `CAMGATE_NODE_ID`, else `node_id`, else the host
    /// name.
    pub node_id: String,
    /// Where clients and other nodes reach this node's HTTP listener:
    /// `CAMGATE_ADVERTISE_URL`, else `advertise_url`, else `[server]
    /// listen` when it names an address.
    pub advertise_url: Url,
    /// Where RTSP clients reach this node's RTSP server (none when it is
    /// off): `CAMGATE_ADVERTISE_RTSP`, else `advertise_rtsp`, else
    /// `[rtsp_server] listen` when it names an address.
    pub advertise_rtsp: Option<Url>,
    /// The node's etcd lease: a dead node's cameras move after this long.
    /// Default 3 s.
    pub lease_ttl: Duration,
    /// Key prefix in etcd. Default `/camgate/`.
    pub prefix: String,
    /// Most cameras this node takes; unlimited when absent.
    pub max_cameras: Option<usize>,
    /// TLS towards etcd, when an endpoint is `https://` or files are set.
    pub tls: Option<EtcdTls>,
    /// etcd user name and password.
    pub credentials: Option<(String, Secret)>,
}

const WHO: &str = "[cluster] ";

/// The host name, for the default node id.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// True for a node id (also an etcd key part and a URL path part).
fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An address clients can use for `listen`: none when it is a wildcard.
fn reachable(listen: SocketAddr, scheme: &str) -> Option<Url> {
    if listen.ip().is_unspecified() {
        return None;
    }
    Url::parse(&format!("{scheme}://{listen}")).ok()
}

/// Checks `[cluster]`. `listen` and `https` describe the HTTP listener,
/// `rtsp` the RTSP server's address when it is on.
pub(super) fn cluster(
    raw: Option<&RawCluster>,
    listen: SocketAddr,
    https: bool,
    rtsp: Option<SocketAddr>,
    src: &Source<'_>,
    env: EnvLookup<'_>,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let Some(list) = &raw.etcd else {
        return Err(ConfigError::Invalid {
            file: src.file.to_owned(),
            line: 0,
            message: "[cluster] field `etcd`: missing: the etcd endpoints, e.g. [\"http://10.0.0.1:2379\"]"
                .into(),
        });
    };
    let mut etcd = Vec::new();
    for v in list.get_ref() {
        let url = Url::parse(v.get_ref())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                src.field(
                    v,
                    WHO,
                    "etcd",
                    &format!(
                        "{:?} is not an etcd endpoint URL (http://HOST:2379 or https://HOST:2379)",
                        v.get_ref()
                    ),
                )
            })?;
        etcd.push(url);
    }
    if etcd.is_empty() {
        return Err(src.field(list, WHO, "etcd", "names no endpoint"));
    }
    let node_id = match env("CAMGATE_NODE_ID")
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
    {
        Some(id) if valid_node_id(&id) => id,
        Some(id) => {
            return Err(ConfigError::Invalid {
                file: src.file.to_owned(),
                line: 0,
                message: format!(
                    "CAMGATE_NODE_ID={id:?} is not a node id (1 to 64 letters, digits, '-', '_', '.')"
                ),
            })
        }
        None => match &raw.node_id {
            Some(v) if valid_node_id(v.get_ref()) => v.get_ref().clone(),
            Some(v) => {
                return Err(src.field(
                    v,
                    WHO,
                    "node_id",
                    &format!(
                        "{:?} is not a node id (1 to 64 letters, digits, '-', '_', '.')",
                        v.get_ref()
                    ),
                ))
            }
            None => host_name().filter(|h| valid_node_id(h)).ok_or_else(|| {
                ConfigError::Invalid {
                    file: src.file.to_owned(),
                    line: 0,
                    message: "[cluster] field `node_id`: the host name cannot serve as node id; set node_id or CAMGATE_NODE_ID".into(),
                }
            })?,
        },
    };
    let url_field = |v: &Spanned<String>, field: &str, schemes: &[&str]| {
        Url::parse(v.get_ref())
            .ok()
            .filter(|u| schemes.contains(&u.scheme()) && u.host().is_some())
            .ok_or_else(|| {
                src.field(
                    v,
                    WHO,
                    field,
                    &format!(
                        "{:?} is not a {} URL with a host",
                        v.get_ref(),
                        schemes.join(" or ")
                    ),
                )
            })
    };
    // The environment over the file, as for the node id: in Kubernetes,
    // `CAMGATE_ADVERTISE_URL=http://$(POD_IP):8080` from the downward API.
    let env_url = |name: &str, schemes: &[&str]| -> Result<Option<Url>, ConfigError> {
        match env(name)
            .and_then(|s| s.into_string().ok())
            .filter(|s| !s.is_empty())
        {
            None => Ok(None),
            Some(v) => Url::parse(&v)
                .ok()
                .filter(|u| schemes.contains(&u.scheme()) && u.host().is_some())
                .map(Some)
                .ok_or_else(|| ConfigError::Invalid {
                    file: src.file.to_owned(),
                    line: 0,
                    message: format!(
                        "{name}={v:?} is not a {} URL with a host",
                        schemes.join(" or ")
                    ),
                }),
        }
    };
    let advertise_url = match (env_url("CAMGATE_ADVERTISE_URL", &["http", "https"])?, &raw.advertise_url) {
        (Some(u), _) => u,
        (None, Some(v)) => url_field(v, "advertise_url", &["http", "https"])?,
        (None, None) => reachable(listen, if https { "https" } else { "http" }).ok_or_else(|| {
            ConfigError::Invalid {
                file: src.file.to_owned(),
                line: 0,
                message: format!(
                    "[cluster] field `advertise_url`: missing, and [server] listen = {listen} names no address other nodes can use; set advertise_url (e.g. \"http://10.0.0.5:{}\") or CAMGATE_ADVERTISE_URL",
                    listen.port()
                ),
            }
        })?,
    };
    let advertise_rtsp = match (env_url("CAMGATE_ADVERTISE_RTSP", &["rtsp", "rtsps"])?, &raw.advertise_rtsp, rtsp) {
        (Some(u), _, _) => Some(u),
        (None, Some(v), _) => Some(url_field(v, "advertise_rtsp", &["rtsp", "rtsps"])?),
        (None, None, Some(addr)) => Some(reachable(addr, "rtsp").ok_or_else(|| ConfigError::Invalid {
            file: src.file.to_owned(),
            line: 0,
            message: format!(
                "[cluster] field `advertise_rtsp`: missing, and [rtsp_server] listen = {addr} names no address clients can use; set advertise_rtsp (e.g. \"rtsp://10.0.0.5:{}\") or CAMGATE_ADVERTISE_RTSP",
                addr.port()
            ),
        })?),
        (None, None, None) => None,
    };
    let lease_ttl = match &raw.lease_ttl {
        Some(v) => {
            let secs = v.get_ref().0;
            if !(2.0..=60.0).contains(&secs) || secs.fract() != 0.0 {
                return Err(src.field(
                    v,
                    WHO,
                    "lease_ttl",
                    &format!("{secs} is not a whole number of seconds from 2 to 60"),
                ));
            }
            Duration::from_secs(secs as u64)
        }
        None => Duration::from_secs(3),
    };
    let prefix = match &raw.prefix {
        Some(v) => {
            let p = v.get_ref();
            if !p.starts_with('/') || !p.ends_with('/') || p.len() < 2 || p.contains("//") {
                return Err(src.field(
                    v,
                    WHO,
                    "prefix",
                    &format!("{p:?} must start and end with '/', e.g. \"/camgate/\""),
                ));
            }
            p.clone()
        }
        None => "/camgate/".to_string(),
    };
    let max_cameras = match &raw.max_cameras {
        Some(v) => {
            let n = *v.get_ref();
            if !(0..=1_000_000).contains(&n) {
                return Err(src.field(
                    v,
                    WHO,
                    "max_cameras",
                    &format!("{n} is out of range 0..=1000000"),
                ));
            }
            (n > 0).then_some(n as usize)
        }
        None => None,
    };
    let path = |v: &Option<Spanned<String>>| {
        v.as_ref()
            .map(|p| super::credentials::resolve(p.get_ref(), src.file))
    };
    let identity = match (&raw.cert_file, &raw.key_file) {
        (Some(_), Some(_)) => Some((
            path(&raw.cert_file).expect("set"),
            path(&raw.key_file).expect("set"),
        )),
        (Some(v), None) | (None, Some(v)) => {
            return Err(src.field(
                v,
                WHO,
                "cert_file",
                "cert_file and key_file go together (etcd's client certificate and its key)",
            ))
        }
        (None, None) => None,
    };
    let https_endpoint = etcd.iter().any(|u| u.scheme() == "https");
    let tls = (https_endpoint || raw.ca_file.is_some() || identity.is_some()).then(|| EtcdTls {
        ca_file: path(&raw.ca_file),
        identity,
    });
    if let Some(v) = &raw.password {
        return Err(src.field(
            v,
            WHO,
            "password",
            "an etcd password does not go in this file: set password_env (the name of an environment variable holding it) or password_file",
        ));
    }
    // Either a credentials file (`user:password`, as for cameras), or a
    // user and the environment variable holding the password.
    let credentials = match (&raw.credentials_file, &raw.user) {
        (Some(v), Some(_)) => {
            return Err(src.field(
                v,
                WHO,
                "credentials_file",
                "holds the user name too: set either credentials_file or user",
            ))
        }
        (Some(v), None) => {
            let file = super::credentials::resolve(v.get_ref(), src.file);
            let (user, password) = super::credentials::read(&file)
                .map_err(|e| src.field(v, WHO, "credentials_file", &e))?;
            Some((user, Secret::new(password)))
        }
        (None, Some(user)) => {
            let name = raw
                .password_env
                .as_ref()
                .map(|v| v.get_ref().clone())
                .unwrap_or_else(|| "CAMGATE_ETCD_PASSWORD".to_string());
            let password = env(&name).and_then(|s| s.into_string().ok()).ok_or_else(|| {
                match &raw.password_env {
                    Some(v) => src.field(
                        v,
                        WHO,
                        "password_env",
                        &format!("the environment variable {name} is not set"),
                    ),
                    None => src.field(
                        user,
                        WHO,
                        "user",
                        "needs a password: set CAMGATE_ETCD_PASSWORD, or password_env, or use credentials_file",
                    ),
                }
            })?;
            Some((user.get_ref().clone(), Secret::new(password)))
        }
        (None, None) => {
            if let Some(v) = &raw.password_env {
                return Err(src.field(v, WHO, "password_env", "a password is set but no user"));
            }
            None
        }
    };
    Ok(Some(ClusterConfig {
        etcd,
        node_id,
        advertise_url,
        advertise_rtsp,
        lease_ttl,
        prefix,
        max_cameras,
        tls,
        credentials,
    }))
}

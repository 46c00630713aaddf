//! The configuration while the gateway runs: hot reload of `cameras.toml`
//! (on SIGHUP and when the file changes) and the cameras added through the
//! HTTP API, kept in a state file so they survive reloads and restarts.
//!
//! A reload compares the new file with the file as last applied: cameras
//! added to it start, removed ones stop, changed ones restart, unchanged
//! ones are not touched (their sessions and viewers stay). An invalid file
//! changes nothing and is logged as `FILE:LINE: message`.
//!
//! API cameras live in `<config stem>.api.toml` beside the file (or in
//! `$STATE_DIRECTORY` under systemd), as `[[camera]]` tables exactly as
//! posted. They are validated together with the file (the file's
//! `[defaults]` apply; ids and RTP ports are unique across both). When the
//! file comes to define an id an API camera has, the file's definition
//! wins and the API camera is dropped from the state file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::camera::supervisor::SupervisorError;
use crate::camera::{CameraHandle, Supervisor};
use crate::config::{CameraConfig, Config, ConfigError};

/// How often the file is checked for changes.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A changed file must read the same again after this long before it is
/// applied, so an editor's half-written file is not.
const SETTLE: Duration = Duration::from_millis(250);
/// The name API requests have in validation messages (never shown: the API
/// strips the file and line).
const REQUEST: &str = "request";

/// Why an API camera could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ApiChangeError {
    /// The body is not a camera table; names the field.
    #[error("{0}")]
    Invalid(String),
    /// The id is taken (by a running camera or one defined in the file).
    #[error("{0}")]
    Duplicate(String),
    /// Starting or stopping failed.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// The state file could not be written.
    #[error("cannot save {path}: {error}")]
    Save {
        /// The state file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Cameras started.
    pub added: Vec<String>,
    /// Cameras stopped.
    pub removed: Vec<String>,
    /// Cameras restarted with a changed configuration.
    pub changed: Vec<String>,
    /// Cameras left running untouched.
    pub unchanged: usize,
}

/// The configuration as applied: the main file and the API cameras.
#[derive(Debug)]
pub struct ConfigStore {
    /// Serialises changes (API additions and removals, reloads), which
    /// await camera starts and stops.
    change: tokio::sync::Mutex<()>,
    /// The state; locked briefly, never across an await.
    files: Mutex<Files>,
    /// Called with the new file's configuration after each successful
    /// reload (e.g. to replace the HTTP credentials).
    hooks: Mutex<Vec<ReloadHook>>,
    /// A node of a cluster: the cluster starts and stops cameras, a reload
    /// only hands the new camera list to the hooks.
    clustered: std::sync::atomic::AtomicBool,
}

/// A function [`ConfigStore::on_reload`] registered.
struct ReloadHook(Box<dyn Fn(&Config) + Send + Sync>);

impl std::fmt::Debug for ReloadHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadHook")
    }
}

#[derive(Debug)]
struct Files {
    /// The main file; `None` for a store in memory.
    path: Option<PathBuf>,
    /// The main file's text as last applied.
    text: String,
    /// The last text the poller read, applied or not (so an invalid file is
    /// reported once, not every second).
    seen: Option<String>,
    /// The main file's configuration as last applied, without API cameras.
    config: Config,
    /// API cameras as posted (JSON turned into TOML tables), in order.
    api: Vec<toml::Table>,
    /// Where API cameras are saved; `None` for a store in memory.
    state_path: Option<PathBuf>,
}

impl Files {
    fn name(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "cameras.toml".to_string(), |p| p.display().to_string())
    }

    fn state_name(&self) -> String {
        self.state_path.as_deref().map_or_else(
            || "cameras.api.toml".to_string(),
            |p| p.display().to_string(),
        )
    }
}

/// Where the API cameras of config file `path` are kept: in
/// `$STATE_DIRECTORY` when systemd sets it (the configuration directory is
/// read-only there), else beside the file, as `<stem>.api.toml`.
pub fn state_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "cameras".into(), |s| s.to_string_lossy().into_owned());
    let name = format!("{stem}.api.toml");
    match std::env::var_os("STATE_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().into_owned();
            let first = dirs.split(':').next().unwrap_or_default();
            Path::new(first).join(name)
        }
        _ => path.with_file_name(name),
    }
}

/// The `[[camera]]` document holding `tables`.
fn cameras_toml(tables: &[toml::Table]) -> String {
    let mut doc = toml::Table::new();
    doc.insert(
        "camera".into(),
        toml::Value::Array(tables.iter().cloned().map(toml::Value::Table).collect()),
    );
    // Tables of TOML values always serialise.
    toml::to_string(&doc).unwrap_or_default()
}

/// Reads the state file's tables (none when it does not exist).
fn read_state(path: &Path) -> Result<(String, Vec<toml::Table>), ConfigError> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), vec![])),
        Err(source) => return Err(ConfigError::Io { path: name, source }),
    };
    let doc: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        file: name.clone(),
        line: e
            .span()
            .map_or(1, |s| 1 + text[..s.start].matches('\n').count()),
        message: e.message().to_string(),
    })?;
    let tables = match doc.get("camera") {
        None => vec![],
        Some(toml::Value::Array(items)) => {
            items.iter().filter_map(|v| v.as_table().cloned()).collect()
        }
        Some(_) => {
            return Err(ConfigError::Invalid {
                file: name,
                line: 1,
                message: "`camera` must be an array of tables ([[camera]])".into(),
            })
        }
    };
    Ok((text, tables))
}

/// The `id` of a camera table, if it has a string one.
fn table_id(t: &toml::Table) -> Option<&str> {
    t.get("id").and_then(toml::Value::as_str)
}

/// Whether two camera configurations are the same but for where they are
/// written.
fn same_settings(a: &CameraConfig, b: &CameraConfig) -> bool {
    let mut b = b.clone();
    b.line = a.line;
    *a == b
}

/// A JSON body turned into the TOML table it stands for; `null` is refused
/// with the name of its field.
fn json_to_toml(value: &serde_json::Value, field: &str) -> Result<toml::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => {
            return Err(format!(
                "field `{field}`: null is not a value (leave the field out)"
            ))
        }
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|v| json_to_toml(v, field))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => toml::Value::Table(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), json_to_toml(v, k)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Writes `text` to `path` through a temporary file (readable by the owner
/// only: it may hold passwords), or removes `path` when `text` is `None`.
fn save(path: &Path, text: Option<&str>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(text) = text else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    let name = path.file_name().map_or_else(
        || "cameras.api.toml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The state file's header.
const STATE_HEADER: &str = "\
# Cameras added through camgate's HTTP API (POST /api/v1/cameras).
# camgate rewrites this file on every API change; remove a camera with
# DELETE /api/v1/cameras/ID, or edit this file while camgate is stopped.
# The [defaults] of the main configuration file apply to these cameras.

";

impl ConfigStore {
    /// Reads and validates the file at `path` and the API cameras' state
    /// file. Returns the store and the whole configuration (file cameras,
    /// then API cameras).
    pub fn open(path: &Path) -> Result<(ConfigStore, Config), ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: name.clone(),
            source,
        })?;
        let state_path = state_path(path);
        let (mut state_text, mut api) = read_state(&state_path)?;
        let main = Config::parse(&text, &name)?;
        // As on reload: the file's definition of an id wins.
        let before = api.len();
        api.retain(|t| {
            let id = table_id(t);
            let in_file = main.cameras.iter().any(|c| Some(c.id.as_str()) == id);
            if in_file {
                tracing::warn!(
                    camera = id.unwrap_or("?"),
                    "{name} defines this camera: its API definition is dropped"
                );
            }
            !in_file
        });
        let dropped = api.len() != before;
        if dropped {
            state_text = cameras_toml(&api);
        }
        let whole = if api.is_empty() {
            main.clone()
        } else {
            Config::parse_layered(
                &text,
                &name,
                (&state_text, &state_path.display().to_string()),
            )?
        };
        let store = ConfigStore {
            change: tokio::sync::Mutex::new(()),
            hooks: Mutex::default(),
            clustered: Default::default(),
            files: Mutex::new(Files {
                path: Some(path.to_path_buf()),
                seen: Some(text.clone()),
                text,
                config: main,
                api,
                state_path: Some(state_path),
            }),
        };
        if dropped {
            if let Err(e) = store.save_state(&store.files()) {
                tracing::error!("{e}");
            }
        }
        Ok((store, whole))
    }

    /// A store with no file: API cameras are validated against an empty
    /// configuration and not saved.
    pub fn in_memory() -> ConfigStore {
        ConfigStore {
            change: tokio::sync::Mutex::new(()),
            hooks: Mutex::default(),
            clustered: Default::default(),
            files: Mutex::new(Files {
                path: None,
                text: String::new(),
                seen: None,
                config: Config::parse("", "cameras.toml").expect("an empty file is valid"),
                api: Vec::new(),
                state_path: None,
            }),
        }
    }

    /// Calls `hook` with the file's new configuration after every
    /// successful reload (the cameras are applied by the reload itself).
    pub fn on_reload(&self, hook: impl Fn(&Config) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ReloadHook(Box::new(hook)));
    }

    fn files(&self) -> std::sync::MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether camera `id` was added through the API (rather than defined
    /// in the file).
    pub fn is_api_camera(&self, id: &str) -> bool {
        self.files().api.iter().any(|t| table_id(t) == Some(id))
    }

    /// Adds a camera from a JSON body in the schema of one `[[camera]]`
    /// table, validated against the running configuration, and saves it
    /// in the state file.
    pub async fn add_camera(
        &self,
        supervisor: &Supervisor,
        body: &serde_json::Value,
    ) -> Result<CameraHandle, ApiChangeError> {
        let _change = self.change.lock().await;
        let (cfg, table) = self.check_camera(body, |id| supervisor.camera(id).is_some())?;
        let id = cfg.id.clone();
        let handle = supervisor.add(cfg).await?;
        let saved = {
            let mut files = self.files();
            files.api.push(table);
            self.save_state(&files)
        };
        if let Err(e) = saved {
            let _ = supervisor.remove(&id).await;
            self.files()
                .api
                .retain(|t| table_id(t) != Some(id.as_str()));
            return Err(e);
        }
        tracing::info!(camera = %id, "camera added through the API");
        Ok(handle)
    }

    /// Checks a camera given to the API (a JSON object in the schema of
    /// one `[[camera]]` table) against the files; `taken` says whether an
    /// id is already in use elsewhere (running, or in a cluster's list).
    pub fn check_camera(
        &self,
        body: &serde_json::Value,
        taken: impl Fn(&str) -> bool,
    ) -> Result<(CameraConfig, toml::Table), ApiChangeError> {
        let table = match json_to_toml(body, "camera").map_err(ApiChangeError::Invalid)? {
            toml::Value::Table(t) => t,
            _ => return Err(ApiChangeError::Invalid(
                "the body must be a JSON object: one camera, as a [[camera]] table of cameras.toml"
                    .into(),
            )),
        };
        let cfg = {
            let files = self.files();
            if let Some(id) = table_id(&table) {
                let in_file = files.config.cameras.iter().any(|c| c.id == id);
                let in_api = files.api.iter().any(|t| table_id(t) == Some(id));
                if in_file || in_api || taken(id) {
                    return Err(ApiChangeError::Duplicate(format!(
                        "a camera with id {id:?} already exists"
                    )));
                }
            }
            let mut tables = files.api.clone();
            tables.push(table.clone());
            let extra = cameras_toml(&tables);
            let whole = Config::parse_layered(&files.text, &files.name(), (&extra, REQUEST))
                .map_err(|e| match e {
                    ConfigError::Invalid { message, .. } => ApiChangeError::Invalid(message),
                    other => ApiChangeError::Invalid(other.to_string()),
                })?;
            whole
                .cameras
                .into_iter()
                .last()
                .ok_or_else(|| ApiChangeError::Invalid("no camera in the body".into()))?
        };
        Ok((cfg, table))
    }

    /// As a node of a cluster: reloads give the hooks the new camera list
    /// and leave starting and stopping cameras to the cluster.
    pub fn set_clustered(&self) {
        self.clustered
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops camera `id`; an API camera is also removed from the state
    /// file. A camera of the file stays stopped until the file changes it
    /// or the gateway restarts.
    pub async fn remove_camera(
        &self,
        supervisor: &Supervisor,
        id: &str,
    ) -> Result<(), ApiChangeError> {
        let _change = self.change.lock().await;
        supervisor.remove(id).await?;
        let mut files = self.files();
        let before = files.api.len();
        files.api.retain(|t| table_id(t) != Some(id));
        if files.api.len() != before {
            self.save_state(&files)?;
        } else {
            tracing::info!(
                camera = id,
                "camera of {} stopped; it stays stopped until the file changes it or camgate restarts",
                files.name()
            );
        }
        Ok(())
    }

    /// Writes the API cameras to the state file (removes it when there is
    /// none).
    fn save_state(&self, files: &Files) -> Result<(), ApiChangeError> {
        let Some(path) = &files.state_path else {
            return Ok(());
        };
        let text =
            (!files.api.is_empty()).then(|| format!("{STATE_HEADER}{}", cameras_toml(&files.api)));
        save(path, text.as_deref()).map_err(|error| ApiChangeError::Save {
            path: path.display().to_string(),
            error,
        })
    }

    /// Whether the file's text differs from what was last read (applied or
    /// found invalid). A file being written is given [`SETTLE`] to finish.
    async fn file_changed(&self) -> bool {
        let Some(path) = self.files().path.clone() else {
            return false;
        };
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let Some(text) = read(&path) else {
            return false;
        };
        if self.files().seen.as_deref() == Some(text.as_str()) {
            return false;
        }
        tokio::time::sleep(SETTLE).await;
        // Still being written: look again at the next poll.
        read(&path).as_deref() == Some(text.as_str())
    }

    /// Re-reads the file and applies the difference to the running
    /// cameras. On error nothing changes.
    pub async fn reload(&self, supervisor: &Supervisor) -> Result<ReloadSummary, ConfigError> {
        let _change = self.change.lock().await;
        let (path, name, state_name, api) = {
            let files = self.files();
            let Some(path) = files.path.clone() else {
                return Ok(ReloadSummary::default());
            };
            (path, files.name(), files.state_name(), files.api.clone())
        };
        let read = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: name.clone(),
            source,
        });
        if let Ok(text) = &read {
            self.files().seen = Some(text.clone());
        }
        let text = read?;
        let main = Config::parse(&text, &name)?;
        // API cameras whose id the file now defines give way to the file's.
        let (kept, dropped): (Vec<_>, Vec<_>) = api.into_iter().partition(|t| {
            let id = table_id(t);
            !main.cameras.iter().any(|c| Some(c.id.as_str()) == id)
        });
        if !kept.is_empty() {
            // Ports must still be unique across the file and the API
            // cameras.
            Config::parse_layered(&text, &name, (&cameras_toml(&kept), &state_name))?;
        }

        let old = self.files().config.clone();
        for (table, changed) in [
            ("[server]", old.server != main.server),
            ("[webrtc]", old.webrtc != main.webrtc),
        ] {
            if changed {
                tracing::warn!(
                    "{table} changed in {name}: restart camgate to apply it (cameras are reloaded now)"
                );
            }
        }
        let mut summary = ReloadSummary::default();
        let clustered = self.clustered.load(std::sync::atomic::Ordering::Relaxed);
        for cam in old.cameras.iter().filter(|_| !clustered) {
            if !main.cameras.iter().any(|c| c.id == cam.id)
                && supervisor.remove(&cam.id).await.is_ok()
            {
                summary.removed.push(cam.id.clone());
            }
        }
        for cam in main.cameras.iter().filter(|_| !clustered) {
            let before = old.cameras.iter().find(|c| c.id == cam.id);
            let running = supervisor.camera(&cam.id);
            let started = match (before, running) {
                // Unchanged in the file: leave it as it is (running, or
                // stopped through the API).
                (Some(before), _) if same_settings(before, cam) => {
                    summary.unchanged += 1;
                    continue;
                }
                // Taken over from the API with the same settings.
                (None, Some(running)) if same_settings(&running.config, cam) => {
                    summary.unchanged += 1;
                    continue;
                }
                (_, Some(_)) => {
                    summary.changed.push(cam.id.clone());
                    supervisor.replace(cam.clone()).await
                }
                (_, None) => {
                    summary.added.push(cam.id.clone());
                    supervisor.add(cam.clone()).await
                }
            };
            if let Err(e) = started {
                tracing::error!(camera = %cam.id, error = %e, "cannot start the camera");
            }
        }
        let order: Vec<String> = main
            .cameras
            .iter()
            .map(|c| c.id.clone())
            .chain(kept.iter().filter_map(|t| table_id(t).map(str::to_string)))
            .collect();
        supervisor.reorder(&order.iter().map(String::as_str).collect::<Vec<_>>());

        for hook in self.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            (hook.0)(&main);
        }
        let mut files = self.files();
        files.text = text;
        files.config = main;
        if !dropped.is_empty() {
            for t in &dropped {
                let id = table_id(t).unwrap_or("?");
                tracing::warn!(
                    camera = id,
                    "{name} now defines this camera: its API definition is dropped"
                );
            }
            files.api = kept;
            if let Err(e) = self.save_state(&files) {
                tracing::error!("{e}");
            }
        }
        Ok(summary)
    }

    /// [`ConfigStore::reload`], logged: what changed, or the error (as
    /// `FILE:LINE: message`) and that the running configuration stays.
    pub async fn reload_logged(&self, supervisor: &Supervisor, why: &str) {
        match self.reload(supervisor).await {
            Ok(s) => tracing::info!(
                trigger = why,
                added = ?s.added,
                removed = ?s.removed,
                changed = ?s.changed,
                unchanged = s.unchanged,
                "configuration reloaded"
            ),
            Err(e) => tracing::error!(trigger = why, "{e}; keeping the running configuration"),
        }
    }
}

/// Reloads on SIGHUP and when the file changes, until `shutdown`.
pub async fn watch(
    store: Arc<ConfigStore>,
    supervisor: Arc<Supervisor>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler: reload on file change only");
            None
        }
    };
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = async {
                match &mut hangup {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                crate::service::reloading();
                store.reload_logged(&supervisor, "SIGHUP").await;
                crate::service::reloaded();
            }
            _ = poll.tick() => {
                if store.file_changed().await {
                    store.reload_logged(&supervisor, "file changed").await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Supervisor;

    #[test]
    fn on_demand_and_idle_timeout() {
        let cam = |extra: &str| {
            Config::parse(
                &format!("[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n{extra}"),
                "cameras.toml",
            )
        };
        let c = cam("").unwrap().cameras.remove(0);
        assert!(!c.on_demand);
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        let c = cam("on_demand = true\nidle_timeout = 2.5\n")
            .unwrap()
            .cameras
            .remove(0);
        assert!(c.on_demand);
        assert_eq!(c.idle_timeout, Duration::from_millis(2500));
        let e = cam("on_demand = true\nidle_timeout = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cameras.toml:5: camera \"a\": field `idle_timeout`: 0 is out of range"),
            "{e}"
        );
        let e = cam("on_demand = \"yes\"\n").unwrap_err().to_string();
        assert!(e.contains("`on_demand`"), "{e}");
    }

    #[test]
    fn layered_files_share_ids_ports_and_defaults() {
        let main = "[defaults]\ntransport = \"udp\"\n[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:5004\"\n";
        let extra = "[[camera]]\nid = \"b\"\nurl = \"sim://b\"\n";
        let c = Config::parse_layered(main, "cameras.toml", (extra, "api.toml")).unwrap();
        assert_eq!(c.cameras.len(), 2);
        assert_eq!(c.cameras[1].transport, crate::config::TransportMode::Udp);

        let dup = "[[camera]]\nid = \"a\"\nurl = \"sim://b\"\n";
        let e = Config::parse_layered(main, "cameras.toml", (dup, "api.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("api.toml:2: camera id \"a\" is used twice (first at cameras.toml:4)"),
            "{e}"
        );
        let ports = "[[camera]]\nid = \"b\"\nurl = \"sim://b\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:5006\"\n";
        let e = Config::parse_layered(main, "cameras.toml", (ports, "api.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("api.toml:5:") && e.contains("`destination`"),
            "{e}"
        );
        let server = "[server]\nlisten = \"127.0.0.1:1\"\n";
        let e = Config::parse_layered(main, "cameras.toml", (server, "api.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[server] belongs in cameras.toml"), "{e}");
    }

    /// A file of disabled cameras (no task, no network) named `ids`, each
    /// with `extra`.
    fn disabled(cams: &[(&str, &str)]) -> String {
        cams.iter()
            .map(|(id, extra)| {
                format!(
                    "[[camera]]\nid = \"{id}\"\nurl = \"sim://{id}\"\nenabled = false\n{extra}\n"
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn reload_applies_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cameras.toml");
        std::fs::write(&path, disabled(&[("keep", ""), ("drop", ""), ("edit", "")])).unwrap();
        let (store, config) = ConfigStore::open(&path).unwrap();
        let store = Arc::new(store);
        let root = CancellationToken::new();
        let sup = Supervisor::new(&root);
        for c in config.cameras {
            sup.add(c).await.unwrap();
        }
        let keep = sup.camera("keep").unwrap();
        let added = store
            .add_camera(
                &sup,
                &serde_json::json!({"id": "api", "url": "sim://api", "enabled": false}),
            )
            .await
            .unwrap();
        assert_eq!(added.config.id, "api");
        assert!(store.is_api_camera("api"));
        assert!(dir.path().join("cameras.api.toml").exists());
        let dup = store
            .add_camera(&sup, &serde_json::json!({"id": "keep", "url": "sim://x"}))
            .await;
        assert!(matches!(dup, Err(ApiChangeError::Duplicate(_))), "{dup:?}");

        std::fs::write(
            &path,
            format!(
                "# moved\n{}",
                disabled(&[("new", ""), ("edit", "transport = \"udp\""), ("keep", "")])
            ),
        )
        .unwrap();
        let summary = store.reload(&sup).await.unwrap();
        assert_eq!(summary.added, ["new"]);
        assert_eq!(summary.removed, ["drop"]);
        assert_eq!(summary.changed, ["edit"]);
        assert_eq!(summary.unchanged, 1);
        let ids: Vec<String> = sup.cameras().iter().map(|c| c.config.id.clone()).collect();
        assert_eq!(ids, ["new", "edit", "keep", "api"]);
        // The unchanged camera is the same camera, not a new one.
        assert!(Arc::ptr_eq(&sup.camera("keep").unwrap().hub, &keep.hub));

        // An invalid file changes nothing.
        std::fs::write(&path, "[[camera]]\nid = \"x\"\n").unwrap();
        let e = store.reload(&sup).await.unwrap_err().to_string();
        assert!(e.contains("cameras.toml:1:") && e.contains("`url`"), "{e}");
        assert_eq!(sup.cameras().len(), 4);

        // Removing the API camera empties the state file.
        store.remove_camera(&sup, "api").await.unwrap();
        assert!(!dir.path().join("cameras.api.toml").exists());
        root.cancel();
        sup.join().await;
    }

    #[test]
    fn json_becomes_a_camera_table() {
        let body = serde_json::json!({
            "id": "a", "url": "sim://a", "refresh_timeout": 2.5, "enabled": true,
            "rtp_out": [{"destination": "127.0.0.1:5004", "ttl": 2}],
        });
        let toml::Value::Table(t) = json_to_toml(&body, "camera").unwrap() else {
            panic!("not a table");
        };
        let text = cameras_toml(&[t]);
        let c = Config::parse_layered("", "cameras.toml", (&text, REQUEST)).unwrap();
        assert_eq!(c.cameras[0].id, "a");
        assert_eq!(c.cameras[0].rtp_out[0].ttl, 2);
        assert_eq!(
            c.cameras[0].refresh_timeout,
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn null_names_its_field() {
        let body = serde_json::json!({"id": "a", "url": null});
        assert!(json_to_toml(&body, "camera").unwrap_err().contains("`url`"));
    }

    #[test]
    fn state_file_sits_beside_the_config() {
        if std::env::var_os("STATE_DIRECTORY").is_none() {
            assert_eq!(
                state_path(Path::new("/etc/camgate/cameras.toml")),
                Path::new("/etc/camgate/cameras.api.toml")
            );
        }
    }

    #[test]
    fn same_settings_ignores_the_line() {
        let text = "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n";
        let a = Config::parse(text, "x").unwrap().cameras.remove(0);
        let b = Config::parse(&format!("\n\n{text}"), "x")
            .unwrap()
            .cameras
            .remove(0);
        assert_ne!(a.line, b.line);
        assert!(same_settings(&a, &b));
        let c = Config::parse(&format!("{text}transport = \"udp\"\n"), "x")
            .unwrap()
            .cameras
            .remove(0);
        assert!(!same_settings(&a, &c));
    }
}

//! Janus (Debian package `janus`) as the baseline of benches/viewers.rs:
//! its streaming plugin with one RTSP mountpoint pulling camgate's RTSP
//! server, its HTTP API on loopback, nothing else loaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::Proc;

/// The streaming mountpoint's id.
pub const MOUNTPOINT: u64 = 1;

/// The address Janus gathers its ICE candidate on. libnice (through
/// Janus's `janus_ice_setup_local`) skips loopback interfaces, so the
/// bench's namespace gives Janus this address on a veth of its own; the
/// packets still go over `lo` (it is a local address of the namespace).
pub const ICE_ADDRESS: &str = "127.0.0.2";

/// Why Janus cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    // `janus --version` prints its version and exits with 1.
    let ok = Command::new("janus")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Janus version"));
    if !ok {
        return Some(
            "no `janus` (Debian package janus; scripts/test installs it): the viewers bench \
             measures Janus's streaming plugin as its baseline"
                .into(),
        );
    }
    if lib_dir().is_none() {
        return Some("janus is installed but its streaming plugin was not found".into());
    }
    None
}

/// The folder holding Janus's `plugins/` and `transports/`.
fn lib_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("janus"))
        .collect();
    dirs.extend(
        [
            "/usr/lib/janus",
            "/opt/janus/lib/janus",
            "/usr/local/lib/janus",
        ]
        .map(PathBuf::from),
    );
    dirs.into_iter()
        .find(|d| d.join("plugins/libjanus_streaming.so").exists())
}

/// Every `.so` in `dir` but `keep`, comma-separated (Janus loads all the
/// plugins it finds unless told not to).
fn all_but(dir: &Path, keep: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".so") && n != keep)
        .collect();
    names.sort();
    names.join(",")
}

/// Starts Janus with its configuration in `dir`: HTTP API on
/// 127.0.0.1:`http`, the mountpoint pulling `rtsp_url`. Its log goes to
/// `dir/janus.log`.
pub fn start(dir: &Path, http: u16, rtsp_url: &str) -> Proc {
    let lib = lib_dir().expect("janus plugins");
    let debug = std::env::var_os("CAMGATE_VIEWERS_DEBUG").is_some();
    let d = dir.display();
    let l = lib.display();
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write(
        "janus.jcfg",
        format!(
            "general: {{\n\
             \tconfigs_folder = \"{d}\"\n\
             \tplugins_folder = \"{l}/plugins\"\n\
             \ttransports_folder = \"{l}/transports\"\n\
             \tevents_folder = \"{l}/events\"\n\
             \tloggers_folder = \"{l}/loggers\"\n\
             \tdebug_level = {level}\n\
             \tsession_timeout = 0\n{loops}\
             }}\n\
             media: {{\n\tipv6 = false\n\trtp_port_range = \"30000-39999\"\n}}\n\
             nat: {{\n\tnice_debug = {nice}\n\tice_enforce_list = \"{ICE_ADDRESS}\"\n\tignore_mdns = true\n}}\n\
             plugins: {{\n\tdisable = \"{}\"\n}}\n\
             transports: {{\n\tdisable = \"{}\"\n}}\n\
             loggers: {{\n\tdisable = \"{}\"\n}}\n\
             events: {{\n\tbroadcast = false\n}}\n",
            all_but(&lib.join("plugins"), "libjanus_streaming.so"),
            all_but(&lib.join("transports"), "libjanus_http.so"),
            all_but(&lib.join("loggers"), ""),
            level = if debug { 7 } else { 4 },
            nice = debug,
            // Janus's default: one event loop (a thread) per viewer's handle.
            loops = std::env::var("CAMGATE_VIEWERS_JANUS_LOOPS")
                .map_or(String::new(), |n| format!("\tevent_loops = {n}\n")),
        ),
    );
    write(
        "janus.transport.http.jcfg",
        format!(
            "general: {{\n\tjson = \"plain\"\n\tbase_path = \"/janus\"\n\thttp = true\n\
             \tport = {http}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\n\
             admin: {{\n\tadmin_http = false\n\tadmin_https = false\n}}\n"
        ),
    );
    write(
        "janus.plugin.streaming.jcfg",
        format!(
            "general: {{\n\trtp_port_range = \"40000-40999\"\n\tevents = false\n}}\n\
             cam: {{\n\ttype = \"rtsp\"\n\tid = {MOUNTPOINT}\n\tdescription = \"camgate cam\"\n\
             \taudio = false\n\tvideo = true\n\turl = \"{rtsp_url}\"\n\
             \trtspiface = \"127.0.0.1\"\n}}\n"
        ),
    );
    let log = std::fs::File::create(dir.join("janus.log")).unwrap();
    Proc(
        Command::new("janus")
            .arg("-C")
            .arg(dir.join("janus.jcfg"))
            .arg("-F")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start janus"),
    )
}

/// The tail of Janus's log, for a failure message.
pub fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("janus.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

//! `cameras.toml` through the public API, as `camgate check` uses it:
//! parsing from text and from a file, the process environment for
//! `password_env`, and what error and summary texts look like.

use std::io::Write;
use std::time::Duration;

use camgate::config::{Config, ConfigError, OnDamage, TransportMode};
use camgate::sim::faults::Faults;

/// A variable name no other test (or process) uses.
fn unique_var(tag: &str) -> String {
    format!("CAMGATE_CONFIG_CHECK_{tag}_{}", std::process::id())
}

fn camera_with_env(var: &str) -> String {
    format!(
        "[[camera]]\nid = \"lobby\"\nurl = \"rtsp://192.0.2.10/ch1\"\nusername = \"admin\"\npassword_env = \"{var}\"\n"
    )
}

#[test]
fn password_env_set() {
    let var = unique_var("SET");
    std::env::set_var(&var, "pa55-from-env");
    let config = Config::parse(&camera_with_env(&var), "cameras.toml").expect("valid");
    let credentials = config.cameras[0].credentials.as_ref().expect("credentials");
    assert_eq!(
        (credentials.username.as_str(), credentials.password.expose()),
        ("admin", "pa55-from-env")
    );
    assert!(!format!("{config:?}").contains("pa55-from-env"));
    assert!(!config.summary().contains("pa55-from-env"));
    std::env::remove_var(&var);
}

#[test]
fn password_env_unset() {
    let var = unique_var("UNSET");
    std::env::remove_var(&var);
    let err = Config::parse(&camera_with_env(&var), "cameras.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cameras.toml:5: camera \"lobby\": field `password_env`: environment variable {var} is not set")
    );
}

#[test]
fn error_texts() {
    let text = "[server]\nlisten = \"127.0.0.1:8080\"\n\n[[camera]]\nid = \"lobby\"\ntransport = \"udp\"\nurl = \"http://admin:s3cret@192.0.2.10/\"\n";
    let err = Config::parse(text, "cameras.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cameras.toml:7: camera \"lobby\": field `url`: scheme \"http\" is not supported (use rtsp://, rtsps:// or sim://)"
    );

    let text = "[[camera]]\nid = \"lobby\"\nurl = \"sim://lobby\"\ntrasport = \"udp\"\n";
    let err = Config::parse(text, "site-a.toml").unwrap_err();
    assert!(
        err.to_string().starts_with("site-a.toml:4: unknown field `trasport` in [[camera]], expected one of `id`, `url`, `transport`,"),
        "{err}"
    );
    match err {
        ConfigError::Invalid { file, line, .. } => {
            assert_eq!((file.as_str(), line), ("site-a.toml", 4))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_and_summarize() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "[defaults]\ntransport = \"auto\"\n\n[[camera]]\nid = \"lobby\"\nurl = \"rtsp://admin:s3cret@192.0.2.10:554/Streaming/Channels/101\"\n\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:5004\"\n"
    )
    .unwrap();
    let config = Config::load(file.path()).unwrap();
    let lobby = &config.cameras[0];
    assert_eq!(lobby.transport, TransportMode::Auto);
    assert_eq!(
        lobby.url.as_str(),
        "rtsp://192.0.2.10:554/Streaming/Channels/101"
    );
    assert_eq!(
        config.summary(),
        "HTTP on 127.0.0.1:8080; 1 camera (1 enabled)\n  lobby  auto  1 rtp_out  rtsp://192.0.2.10:554/Streaming/Channels/101\n"
    );
}

#[test]
fn empty_file_is_valid() {
    let config = Config::parse("", "cameras.toml").unwrap();
    assert!(config.cameras.is_empty());
    assert_eq!(Config::default_path().to_str(), Some("cameras.toml"));
}

#[test]
fn shipped_cameras_toml_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cameras.toml");
    if let Err(e) = Config::load(&path) {
        panic!("the cameras.toml in the repository is invalid: {e}");
    }
}

#[test]
fn ingest_keys_through_the_public_api() {
    let text = r#"[defaults]
transport = "udp"
network_cache_ms = 300
socket_buffer_bytes = 4194304
refresh_timeout = 6

[[camera]]
id = "lobby"
url = "rtsp://192.0.2.10/ch1"
username = "admin"
password = "pa55"
onvif_url = "http://192.0.2.10/onvif/device_service"
on_damage = "forward"

[[camera]]
id = "flaky"
url = "sim://flaky"
on_damage = "drop-until-keyframe"
network_cache_ms = 0
[camera.faults]
seed = 7
truncate = 0.02
"#;
    let config = Config::parse(text, "cameras.toml").expect("valid");
    let lobby = &config.cameras[0];
    assert_eq!(lobby.network_cache_ms, Some(300));
    assert_eq!(lobby.network_cache(true), Duration::from_millis(300));
    assert_eq!(lobby.socket_buffer_bytes, 4 * 1024 * 1024);
    assert_eq!(lobby.on_damage, OnDamage::Forward);
    assert_eq!(lobby.refresh_timeout, Some(Duration::from_secs(6)));
    assert_eq!(
        lobby.onvif_url.as_ref().map(|u| u.as_str()),
        Some("http://192.0.2.10/onvif/device_service")
    );
    assert_eq!(lobby.faults, None);

    let flaky = &config.cameras[1];
    assert_eq!(flaky.network_cache_ms, Some(0));
    assert_eq!(
        flaky.socket_buffer_bytes,
        4 * 1024 * 1024,
        "from [defaults]"
    );
    assert_eq!(flaky.on_damage, OnDamage::DropUntilKeyframe);
    assert_eq!(flaky.refresh_timeout, Some(Duration::from_secs(6)));
    assert_eq!(
        flaky.faults,
        Some(Faults {
            seed: 7,
            truncate: 0.02,
            ..Faults::default()
        })
    );
    assert!(!format!("{config:?}").contains("pa55"));
}

#[test]
fn ingest_key_error_texts() {
    let text = "[[camera]]\nid = \"lobby\"\nurl = \"rtsp://192.0.2.10/ch1\"\n\n[camera.faults]\nseed = 7\n";
    let err = Config::parse(text, "cameras.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cameras.toml:5: camera \"lobby\": [camera.faults] needs a sim:// camera; this one's url (line 3) is rtsp://"
    );

    let text = "[[camera]]\nid = \"flaky\"\nurl = \"sim://flaky\"\n[camera.faults]\nseed = 7\ntruncat = 0.02\n";
    let err = Config::parse(text, "cameras.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cameras.toml:6: unknown field `truncat` in [camera.faults], expected one of `seed`, `truncate`,"),
        "{err}"
    );

    let text = "[defaults]\nsocket_buffer_bytes = 212992\nnetwork_cache_ms = 10001\n";
    let err = Config::parse(text, "cameras.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cameras.toml:3: [defaults] field `network_cache_ms`: 10001 is out of range 0..=10000"
    );

    let text = "[[camera]]\nid = \"lobby\"\nurl = \"rtsp://192.0.2.10/ch1\"\nonvif_url = \"https://192.0.2.10/onvif/device_service\"\n";
    let err = Config::parse(text, "cameras.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cameras.toml:4: camera \"lobby\": field `onvif_url`: https:// is not supported yet (use http://)"
    );
}

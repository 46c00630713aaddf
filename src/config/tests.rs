//! Unit tests: each rule of `docs/config.md`, with the exact line reported.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use super::faults::Faults;
use super::validate;
use super::{refresh_timeout_for, Config, ConfigError, OnDamage, TransportMode};

const FILE: &str = "cameras.toml";

/// Parses with an environment holding only `LOBBY_PASSWORD=from-env`.
fn parse(text: &str) -> Result<Config, ConfigError> {
    let env = |name: &str| (name == "LOBBY_PASSWORD").then(|| OsString::from("from-env"));
    validate::parse(text, FILE, &env)
}

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

/// The line and message of the error `text` must produce.
fn err(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ConfigError::Invalid {
            file,
            line,
            message,
        }) => {
            assert_eq!(file, FILE);
            (line, message)
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(c) => panic!("expected an error, got {c:?}"),
    }
}

/// Asserts the error's line and that its message contains every `parts`.
#[track_caller]
fn assert_err(text: &str, line: usize, parts: &[&str]) {
    let (got_line, message) = err(text);
    for part in parts {
        assert!(message.contains(part), "message {message:?} lacks {part:?}");
    }
    assert_eq!(got_line, line, "wrong line for {message:?}");
    assert!(!message.contains("s3cret"), "password leaked: {message}");
}

fn creds(user: &str, password: &str) -> Option<crate::credentials::Credentials> {
    Some(crate::credentials::Credentials::new(user, password))
}

const FULL: &str = r#"# the example of docs/config.md
[server]
listen = "0.0.0.0:9090"

[defaults]
transport = "udp"
rtp_payload_size = 1400

[[camera]]
id = "lobby"
url = "rtsp://ad%40min:s3cret%2Fx@192.0.2.10:554/Streaming/Channels/101"
transport = "tcp"
rtp_payload_size = 1200

[[camera.rtp_out]]
destination = "127.0.0.1:5004"

[[camera.rtp_out]]
destination = "239.1.2.3:6000"
ttl = 4

[[camera]]
id = "yard.east-2_b"
url = "rtsp://192.0.2.11/main"
username = "viewer"
password_env = "LOBBY_PASSWORD"
enabled = false

[[camera]]
id = "demo"
url = "sim://lobby"
username = "admin"
password = "s3cret"

[[auth.token]]
token = "0123456789abcdef0123"
role = "admin"
"#;

#[test]
fn full_example() {
    let c = ok(FULL);
    assert_eq!(
        c.server.listen,
        "0.0.0.0:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.cameras.len(), 3);

    let lobby = &c.cameras[0];
    assert_eq!(lobby.id, "lobby");
    assert_eq!(
        lobby.url.as_str(),
        "rtsp://192.0.2.10:554/Streaming/Channels/101"
    );
    assert_eq!(lobby.credentials, creds("ad@min", "s3cret/x"));
    assert_eq!(lobby.transport, TransportMode::Tcp);
    assert!(lobby.enabled);
    assert_eq!(lobby.rtp_payload_size, 1200);
    assert_eq!(lobby.line, 9);
    assert_eq!(lobby.rtp_out.len(), 2);
    assert_eq!(
        lobby.rtp_out[0].destination,
        "127.0.0.1:5004".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(lobby.rtp_out[0].ttl, 1);
    assert_eq!(
        lobby.rtp_out[1].destination,
        "239.1.2.3:6000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(lobby.rtp_out[1].ttl, 4);

    let yard = &c.cameras[1];
    assert_eq!(yard.id, "yard.east-2_b");
    assert_eq!(yard.credentials, creds("viewer", "from-env"));
    assert_eq!(yard.transport, TransportMode::Udp, "from [defaults]");
    assert_eq!(yard.rtp_payload_size, 1400, "from [defaults]");
    assert!(!yard.enabled);
    assert_eq!(yard.line, 22);

    let demo = &c.cameras[2];
    assert_eq!(demo.url.as_str(), "sim://lobby");
    assert_eq!(demo.credentials, creds("admin", "s3cret"));
}

#[test]
fn empty_files_are_valid() {
    for text in [
        "",
        "\n\n# nothing yet\n",
        "[server]\n",
        "[defaults]\n",
        "camera = []\n",
    ] {
        let c = ok(text);
        assert!(c.cameras.is_empty());
        assert_eq!(c.server.listen, super::DEFAULT_LISTEN);
    }
}

#[test]
fn builtin_defaults() {
    let c = ok("[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n");
    let a = &c.cameras[0];
    assert_eq!(a.transport, TransportMode::Tcp);
    assert_eq!(a.rtp_payload_size, 1200);
    assert!(a.enabled);
    assert!(a.credentials.is_none());
    assert!(a.rtp_out.is_empty());
    assert_eq!(
        c.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn defaults_applied_and_overridden() {
    let c = ok(r#"
[defaults]
transport = "auto"
rtp_payload_size = 1000

[[camera]]
id = "a"
url = "sim://a"

[[camera]]
id = "b"
url = "sim://b"
transport = "udp"
rtp_payload_size = 200
"#);
    assert_eq!(c.cameras[0].transport, TransportMode::Auto);
    assert_eq!(c.cameras[0].rtp_payload_size, 1000);
    assert_eq!(c.cameras[1].transport, TransportMode::Udp);
    assert_eq!(c.cameras[1].rtp_payload_size, 200);
}

#[test]
fn unknown_fields() {
    assert_err(
        "# top\nlisten = \"x\"\n",
        2,
        &["unknown field `listen` at the top level, expected one of `server`, `defaults`, `auth`, `webrtc`, `rtsp_server`, `cluster`, `camera`"],
    );
    assert_err(
        "[server]\nlisten = \"127.0.0.1:1\"\nport = 1\n",
        3,
        &["unknown field `port` in [server], expected one of `listen`, `allow_unauthenticated`"],
    );
    assert_err(
        "[defaults]\nenabled = false\n",
        2,
        &["unknown field `enabled` in [defaults], expected one of `transport`, `rtp_payload_size`, \
           `network_cache_ms`, `socket_buffer_bytes`, `on_damage`, `refresh_timeout`"],
    );
    assert_err(
        "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n\ntrasport = \"udp\"\n",
        5,
        &["unknown field `trasport` in [[camera]], expected one of `id`, `url`, `transport`"],
    );
    assert_err(
        "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:5004\"\nttll = 2\n",
        6,
        &["unknown field `ttll` in [[camera.rtp_out]], expected `destination` or `ttl`"],
    );
    // The same in inline-table form.
    assert_err(
        "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\nrtp_out = [{ destination = \"127.0.0.1:5004\", port = 1 }]\n",
        4,
        &["unknown field `port` in [[camera.rtp_out]]"],
    );
    // A typo of a table name.
    assert_err(
        "\n[[cameras]]\nid = \"a\"\n",
        2,
        &["unknown field `cameras` at the top level"],
    );
}

#[test]
fn wrong_types() {
    let cam = "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n";
    assert_err(
        &format!("{cam}enabled = \"yes\"\n"),
        4,
        &["field `enabled` in [[camera]]: invalid type: string \"yes\", expected a boolean"],
    );
    assert_err(
        &format!("{cam}rtp_payload_size = \"big\"\n"),
        4,
        &["field `rtp_payload_size` in [[camera]]"],
    );
    assert_err(
        &format!("{cam}rtp_payload_size = 1.5\n"),
        4,
        &["field `rtp_payload_size` in [[camera]]"],
    );
    assert_err(
        &format!("{cam}transport = \"tcpx\"\n"),
        4,
        &["field `transport` in [[camera]]: unknown variant `tcpx`, expected one of `tcp`, `udp`, `auto`"],
    );
    assert_err(
        "[defaults]\ntransport = 1\n",
        2,
        &["field `transport` in [defaults]"],
    );
    assert_err("camera = 1\n", 1, &["field `camera` at the top level"]);
    assert_err("server = \"x\"\n", 1, &["field `server` at the top level"]);
    assert_err(
        "[[camera]]\nid = 7\nurl = \"sim://a\"\n",
        2,
        &["field `id` in [[camera]]"],
    );
    assert_err(
        &format!("{cam}[[camera.rtp_out]]\ndestination = \"127.0.0.1:5004\"\nttl = \"1\"\n"),
        6,
        &["field `ttl` in [[camera.rtp_out]]"],
    );
    // A wrongly typed password is not quoted back.
    let (line, message) = err(&format!("{cam}username = \"u\"\npassword = 987654\n"));
    assert_eq!(line, 5);
    assert_eq!(message, "field `password` in [[camera]]: must be a string");
}

#[test]
fn missing_fields() {
    assert_err(
        "[server]\n\n[[camera]]\nid = \"a\"\n",
        3,
        &["missing field `url` in [[camera]]"],
    );
    assert_err(
        "[[camera]]\nurl = \"sim://a\"\n",
        1,
        &["missing field `id` in [[camera]]"],
    );
    assert_err(
        "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n[[camera.rtp_out]]\nttl = 2\n",
        4,
        &["missing field `destination` in [[camera.rtp_out]]"],
    );
}

#[test]
fn toml_syntax_errors() {
    assert_err("[server]\nlisten = \"127.0.0.1:80\n", 2, &[]);
    assert_err("[server\n", 1, &[]);
    assert_err(
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[server]\n",
        4,
        &["duplicate key `server`"],
    );
    assert_err(
        "[[camera]]\nid = \"a\"\nid = \"b\"\n",
        3,
        &["duplicate key `id`"],
    );
    // CRLF line ends count the same.
    assert_err(
        "[server]\r\n\r\nlisten = 5\r\n",
        3,
        &["field `listen` in [server]"],
    );
}

#[test]
fn listen() {
    assert_eq!(
        ok("[server]\nlisten = \"[::1]:0\"\n").server.listen,
        "[::1]:0".parse::<SocketAddr>().unwrap()
    );
    assert_err(
        "[server]\nlisten = \"localhost:8080\"\n",
        2,
        &["[server] field `listen`: \"localhost:8080\" is not IP:port"],
    );
    assert_err("[server]\nlisten = \"127.0.0.1\"\n", 2, &["field `listen`"]);
}

#[test]
fn ids() {
    let cam = |id: &str| format!("[[camera]]\nurl = \"sim://a\"\nid = \"{id}\"\n");
    assert_err(&cam(""), 3, &["camera #1: field `id`: is empty"]);
    assert_err(&cam("lob by"), 3, &["field `id`: \"lob by\" contains ' '"]);
    assert_err(&cam("caméra"), 3, &["contains 'é'"]);
    assert_err(&cam("a/b"), 3, &["contains '/'"]);
    assert_err(&cam(".."), 3, &["is reserved"]);
    assert_err(
        &cam(&"x".repeat(65)),
        3,
        &["is 65 characters long; the limit is 64"],
    );
    assert_eq!(ok(&cam(&"x".repeat(64))).cameras[0].id.len(), 64);

    let twice = "[[camera]]\nid = \"lobby\"\nurl = \"sim://a\"\n\n[[camera]]\nid = \"yard\"\nurl = \"sim://b\"\n\n[[camera]]\nurl = \"sim://c\"\nid = \"lobby\"\n";
    let (line, message) = err(twice);
    assert_eq!(
        (line, message.as_str()),
        (11, "camera id \"lobby\" is used twice (first at line 2)")
    );
    // Ids are case-sensitive, like URL paths and metric labels.
    ok("[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n[[camera]]\nid = \"A\"\nurl = \"sim://a\"\n");
}

fn with_url(url: &str) -> String {
    format!("[[camera]]\nid = \"lobby\"\nurl = \"{url}\"\n")
}

#[test]
fn urls() {
    let (line, message) = err(&with_url("http://192.0.2.1/"));
    assert_eq!(line, 3);
    assert_eq!(
        message,
        "camera \"lobby\": field `url`: scheme \"http\" is not supported (use rtsp://, rtsps:// or sim://)"
    );
    assert_err(&with_url("rtsps:///path"), 3, &["rtsps:// URL has no host"]);
    assert_err(&with_url("rtsp:///path"), 3, &["rtsp:// URL has no host"]);
    assert_err(&with_url("rtsp:/path"), 3, &["no host"]);
    assert_err(&with_url("sim://"), 3, &["sim://NAME"]);
    assert_err(
        &with_url("192.0.2.1/x"),
        3,
        &["field `url`: not a valid URL"],
    );
    assert_err(
        &with_url("rtsp://u:s3cret@h:99999/"),
        3,
        &["not a valid URL"],
    );
    assert_eq!(
        ok(&with_url("RTSP://Cam.example:8554/a?b")).cameras[0]
            .url
            .as_str(),
        "rtsp://Cam.example:8554/a?b"
    );
}

#[test]
fn url_credentials() {
    let c = ok(&with_url("rtsp://us%20er:p%40ss%25:x@cam/x"));
    let cam = &c.cameras[0];
    assert_eq!(cam.url.as_str(), "rtsp://cam/x");
    assert_eq!(cam.credentials, creds("us er", "p@ss%:x"));
    // A ':' can only hide in the user name percent-encoded; Basic auth
    // cannot carry it.
    let (line, message) = err(&with_url("rtsp://user%3Ax:s3cret@cam/x"));
    assert_eq!(line, 3);
    assert!(message.contains("user name contains ':'"), "{message}");

    let c = ok(&with_url("rtsp://admin:s3cret%21@cam/x"));
    assert_eq!(c.cameras[0].credentials, creds("admin", "s3cret!"));
    let c = ok(&with_url("rtsp://admin@cam/x"));
    assert_eq!(c.cameras[0].credentials, creds("admin", ""));
    assert_eq!(c.cameras[0].url.as_str(), "rtsp://cam/x");

    assert_err(
        &with_url("rtsp://:s3cret@cam/"),
        3,
        &["field `url`: has a password but no user name"],
    );
    assert_err(
        &with_url("rtsp://a%0D%0AX:s3cret@cam/"),
        3,
        &["control character"],
    );
    assert_err(&with_url("rtsp://a%FF:s3cret@cam/"), 3, &["not UTF-8"]);

    let both = format!(
        "{}username = \"admin\"\n",
        with_url("rtsp://admin:s3cret@cam/")
    );
    assert_err(
        &both,
        3,
        &["field `url`: has credentials, and `username`/`password`/`password_env` are set too"],
    );
    let both = format!(
        "{}password_env = \"LOBBY_PASSWORD\"\n",
        with_url("rtsp://admin@cam/")
    );
    assert_err(&both, 3, &["has credentials"]);
}

#[test]
fn credential_fields() {
    let base = with_url("rtsp://cam/x");
    let c = ok(&format!("{base}username = \"admin\"\n"));
    assert_eq!(c.cameras[0].credentials, creds("admin", ""));
    let c = ok(&format!("{base}username = \"admin\"\npassword = \"\"\n"));
    assert_eq!(c.cameras[0].credentials, creds("admin", ""));

    assert_err(
        &format!("{base}\npassword = \"s3cret\"\n"),
        5,
        &["camera \"lobby\": field `password`: needs `username`"],
    );
    assert_err(
        &format!("{base}password_env = \"LOBBY_PASSWORD\"\n"),
        4,
        &["field `password_env`: needs `username`"],
    );
    assert_err(
        &format!(
            "{base}username = \"a\"\npassword = \"s3cret\"\npassword_env = \"LOBBY_PASSWORD\"\n"
        ),
        6,
        &["`password` and `password_env` are both set"],
    );
    assert_err(
        &format!("{base}username = \"\"\npassword = \"s3cret\"\n"),
        4,
        &["field `username`: is empty"],
    );
    assert_err(
        &format!("{base}username = \"a:b\"\n"),
        4,
        &["field `username`: contains ':'"],
    );
    assert_err(
        &format!("{base}username = \"a\\r\\nX: y\"\n"),
        4,
        &["field `username`: contains a control character"],
    );
}

#[test]
fn password_env() {
    let base = format!("{}username = \"admin\"\n", with_url("rtsp://cam/x"));
    let c = ok(&format!("{base}password_env = \"LOBBY_PASSWORD\"\n"));
    assert_eq!(c.cameras[0].credentials, creds("admin", "from-env"));

    let (line, message) = err(&format!("{base}password_env = \"NOT_SET_ANYWHERE\"\n"));
    assert_eq!(line, 5);
    assert_eq!(
        message,
        "camera \"lobby\": field `password_env`: environment variable NOT_SET_ANYWHERE is not set"
    );
    assert_err(
        &format!("{base}password_env = \"A=B\"\n"),
        5,
        &["not a valid environment variable name"],
    );
    assert_err(
        &format!("{base}password_env = \"\"\n"),
        5,
        &["not a valid environment variable name"],
    );

    let text = format!("{base}password_env = \"EMPTY\"\n");
    let empty = |n: &str| (n == "EMPTY").then(OsString::new);
    match validate::parse(&text, FILE, &empty) {
        Err(ConfigError::Invalid {
            line: 5, message, ..
        }) => assert!(message.contains("is set but empty")),
        other => panic!("{other:?}"),
    }
}

fn with_dest(dest: &str) -> String {
    format!(
        "{}\n[[camera.rtp_out]]\ndestination = \"{dest}\"\n",
        with_url("sim://a")
    )
}

#[test]
fn rtp_out_destinations() {
    let c = ok(&with_dest("[ff02::1]:5004"));
    assert_eq!(
        c.cameras[0].rtp_out[0].destination,
        "[ff02::1]:5004".parse::<SocketAddr>().unwrap()
    );
    ok(&with_dest("192.0.2.9:65532"));

    assert_err(
        &with_dest("cam.local:5004"),
        6,
        &["field `destination`: \"cam.local:5004\" is not IP:port (host names are not resolved"],
    );
    assert_err(&with_dest("127.0.0.1"), 6, &["is not IP:port"]);
    assert_err(&with_dest("127.0.0.1:5005"), 6, &["port 5005 is odd"]);
    assert_err(&with_dest("127.0.0.1:0"), 6, &["port 0"]);
    assert_err(&with_dest("127.0.0.1:65534"), 6, &["no room for audio"]);
    assert_err(&with_dest("0.0.0.0:5004"), 6, &["not an address"]);
    assert_err(&with_dest("[::]:5004"), 6, &["not an address"]);

    let ttl = |t: &str| format!("{}ttl = {t}\n", with_dest("239.0.0.1:5004"));
    assert_eq!(ok(&ttl("255")).cameras[0].rtp_out[0].ttl, 255);
    assert_err(&ttl("0"), 7, &["field `ttl`: 0 is out of range 1..=255"]);
    assert_err(
        &ttl("256"),
        7,
        &["field `ttl`: 256 is out of range 1..=255"],
    );
}

#[test]
fn rtp_out_port_collisions() {
    let two = |first: &str, second: &str, enabled: bool| {
        format!(
            "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n[[camera.rtp_out]]\ndestination = \"{first}\"\n\n\
             [[camera]]\nid = \"b\"\nurl = \"sim://b\"\nenabled = {enabled}\n[[camera.rtp_out]]\ndestination = \"{second}\"\n"
        )
    };
    // b's video would land on a's audio port.
    assert_err(
        &two("127.0.0.1:5004", "127.0.0.1:5006", true),
        12,
        &[
            "camera \"b\": field `destination`: camera \"a\" (line 5, destination 127.0.0.1:5004) \
           already sends audio to 127.0.0.1:5006; each destination uses its port for video and \
           port + 2 for audio; 127.0.0.1:5008 is free",
        ],
    );
    assert_err(
        &two("127.0.0.1:5004", "127.0.0.1:5002", true),
        12,
        &["audio would go to 127.0.0.1:5004, where camera \"a\" (line 5, destination 127.0.0.1:5004) sends video"],
    );
    assert_err(
        &two("127.0.0.1:5004", "127.0.0.1:5004", true),
        12,
        &["already sends video to 127.0.0.1:5004"],
    );
    ok(&two("127.0.0.1:5004", "127.0.0.1:5008", true));
    ok(&two("127.0.0.1:5004", "127.0.0.2:5004", true));
    // A disabled camera does not send, so it may share.
    ok(&two("127.0.0.1:5004", "127.0.0.1:5004", false));
    // Within one camera too.
    let same = format!(
        "{}\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:5006\"\n",
        with_dest("127.0.0.1:5004")
    );
    assert_err(
        &same,
        9,
        &["camera \"lobby\" (line 6, destination 127.0.0.1:5004) already sends audio"],
    );
}

#[test]
fn rtp_payload_size_range() {
    let cam = |size: i64| format!("{}rtp_payload_size = {size}\n", with_url("sim://a"));
    assert_eq!(ok(&cam(1460)).cameras[0].rtp_payload_size, 1460);
    assert_err(
        &cam(199),
        4,
        &["camera \"lobby\": field `rtp_payload_size`: 199 is out of range 200..=1460"],
    );
    assert_err(&cam(1461), 4, &["1461 is out of range"]);
    assert_err(&cam(-1), 4, &["-1 is out of range"]);
    assert_err(
        "[defaults]\n\nrtp_payload_size = 1500\n",
        3,
        &["[defaults] field `rtp_payload_size`: 1500 is out of range"],
    );
}

#[test]
fn disabled_cameras_are_validated() {
    assert_err(
        "[[camera]]\nid = \"a\"\nenabled = false\nurl = \"ftp://x\"\n",
        4,
        &["scheme \"ftp\""],
    );
}

#[test]
fn debug_hides_passwords() {
    let c = ok(FULL);
    let shown = format!("{c:?} {:#?}", c.cameras);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("from-env"), "{shown}");
    assert!(
        shown.contains("Credentials { username: \"admin\", password: \"***\" }"),
        "{shown}"
    );
    assert!(
        shown.contains("ad@min"),
        "user names are not secret: {shown}"
    );
}

#[test]
fn summary() {
    let c = ok(FULL);
    assert_eq!(
        c.summary(),
        "HTTP on 0.0.0.0:9090; 3 cameras (2 enabled)\n\
         \x20 lobby          tcp   2 rtp_out  rtsp://192.0.2.10:554/Streaming/Channels/101\n\
         \x20 yard.east-2_b  udp   0 rtp_out  rtsp://192.0.2.11/main  (disabled)\n\
         \x20 demo           udp   0 rtp_out  sim://lobby\n"
    );
    assert_eq!(
        ok("").summary(),
        "HTTP on 127.0.0.1:8080; no cameras configured\n"
    );
    assert!(!c.summary().contains("s3cret"));
}

#[test]
fn load_reads_files() {
    let path =
        std::env::temp_dir().join(format!("camgate-config-test-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\nbogus = 1\n",
    )
    .unwrap();
    let name = path.display().to_string();
    match Config::load(&path) {
        Err(ConfigError::Invalid { file, line: 4, .. }) => assert_eq!(file, name),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
    match Config::load(&path) {
        Err(e @ ConfigError::Io { .. }) => assert!(e.to_string().starts_with(&name)),
        other => panic!("{other:?}"),
    }
    assert_eq!(Config::default_path(), std::path::Path::new("cameras.toml"));
}

#[test]
fn truncated_input_never_panics() {
    for end in (0..=FULL.len()).filter(|&i| FULL.is_char_boundary(i)) {
        let text = &FULL[..end];
        if let Err(ConfigError::Invalid { line, message, .. }) = parse(text) {
            assert!(line <= text.lines().count() + 1, "line {line} for {text:?}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }
}

// ---- network_cache_ms, socket_buffer_bytes, on_damage, refresh_timeout,
// ---- onvif_url and [camera.faults]

/// A camera "lobby" with `url` and the extra `lines` (each ending in a
/// newline); the first extra line is line 4.
fn cam_with(url: &str, lines: &str) -> String {
    format!("{}{lines}", with_url(url))
}

#[test]
fn new_keys_builtin_defaults() {
    let c = ok(&with_url("sim://a"));
    let a = &c.cameras[0];
    assert_eq!(a.network_cache_ms, None);
    assert_eq!(a.socket_buffer_bytes, 2_097_152);
    assert_eq!(a.socket_buffer_bytes, super::DEFAULT_SOCKET_BUFFER_BYTES);
    assert_eq!(a.on_damage, OnDamage::DropUntilKeyframe);
    assert_eq!(a.refresh_timeout, None);
    assert_eq!(a.onvif_url, None);
    assert_eq!(a.faults, None);
    // An empty [defaults] changes nothing.
    let mut c = ok(&format!("[defaults]\n{}", with_url("sim://a")));
    c.cameras[0].line -= 1;
    assert_eq!(c.cameras[0], *a);
}

#[test]
fn new_keys_valid() {
    let c = ok(&cam_with(
        "rtsp://192.0.2.10/ch1",
        "network_cache_ms = 350\nsocket_buffer_bytes = 8388608\non_damage = \"forward\"\n\
         refresh_timeout = 2.5\nonvif_url = \"http://192.0.2.10/onvif/device_service\"\n",
    ));
    let a = &c.cameras[0];
    assert_eq!(a.network_cache_ms, Some(350));
    assert_eq!(a.socket_buffer_bytes, 8_388_608);
    assert_eq!(a.on_damage, OnDamage::Forward);
    assert_eq!(a.refresh_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(
        a.onvif_url.as_ref().map(url::Url::as_str),
        Some("http://192.0.2.10/onvif/device_service")
    );
    // Integers work for refresh_timeout too.
    let c = ok(&cam_with("sim://a", "refresh_timeout = 10\n"));
    assert_eq!(c.cameras[0].refresh_timeout, Some(Duration::from_secs(10)));
    let c = ok(&cam_with(
        "sim://a",
        "on_damage = \"drop-until-keyframe\"\n",
    ));
    assert_eq!(c.cameras[0].on_damage, OnDamage::DropUntilKeyframe);
}

#[test]
fn new_defaults_applied_and_overridden() {
    let c = ok(r#"
[defaults]
network_cache_ms = 500
socket_buffer_bytes = 65536
on_damage = "forward"
refresh_timeout = 8

[[camera]]
id = "a"
url = "sim://a"

[[camera]]
id = "b"
url = "sim://b"
network_cache_ms = 0
socket_buffer_bytes = 67108864
on_damage = "drop-until-keyframe"
refresh_timeout = 1.5
"#);
    let a = &c.cameras[0];
    assert_eq!(a.network_cache_ms, Some(500));
    assert_eq!(a.socket_buffer_bytes, 65_536);
    assert_eq!(a.on_damage, OnDamage::Forward);
    assert_eq!(a.refresh_timeout, Some(Duration::from_secs(8)));
    let b = &c.cameras[1];
    assert_eq!(b.network_cache_ms, Some(0));
    assert_eq!(b.socket_buffer_bytes, 67_108_864);
    assert_eq!(b.on_damage, OnDamage::DropUntilKeyframe);
    assert_eq!(b.refresh_timeout, Some(Duration::from_millis(1500)));
}

#[test]
fn network_cache_ms_range() {
    let cam = |v: &str| cam_with("sim://a", &format!("network_cache_ms = {v}\n"));
    assert_eq!(ok(&cam("0")).cameras[0].network_cache_ms, Some(0));
    assert_eq!(ok(&cam("10000")).cameras[0].network_cache_ms, Some(10_000));
    assert_err(
        &cam("10001"),
        4,
        &["camera \"lobby\": field `network_cache_ms`: 10001 is out of range 0..=10000"],
    );
    assert_err(&cam("-1"), 4, &["-1 is out of range 0..=10000"]);
    assert_err(
        &cam("\"200ms\""),
        4,
        &["field `network_cache_ms` in [[camera]]: invalid type: string \"200ms\""],
    );
    assert_err(&cam("1.5"), 4, &["field `network_cache_ms` in [[camera]]"]);
    assert_err(
        "[defaults]\n\nnetwork_cache_ms = 20000\n",
        3,
        &["[defaults] field `network_cache_ms`: 20000 is out of range 0..=10000"],
    );
    assert_err(
        "[defaults]\nnetwork_cache_ms = true\n",
        2,
        &["field `network_cache_ms` in [defaults]: invalid type: boolean"],
    );
}

#[test]
fn socket_buffer_bytes_range() {
    let cam = |v: &str| cam_with("sim://a", &format!("\nsocket_buffer_bytes = {v}\n"));
    assert_eq!(ok(&cam("65536")).cameras[0].socket_buffer_bytes, 65_536);
    assert_eq!(
        ok(&cam("67_108_864")).cameras[0].socket_buffer_bytes,
        67_108_864
    );
    assert_err(
        &cam("65535"),
        5,
        &["camera \"lobby\": field `socket_buffer_bytes`: 65535 is out of range 65536..=67108864"],
    );
    assert_err(&cam("67108865"), 5, &["67108865 is out of range"]);
    assert_err(&cam("-2097152"), 5, &["-2097152 is out of range"]);
    assert_err(
        &cam("\"2M\""),
        5,
        &["field `socket_buffer_bytes` in [[camera]]: invalid type: string"],
    );
    assert_err(
        "[defaults]\nsocket_buffer_bytes = 1024\n",
        2,
        &["[defaults] field `socket_buffer_bytes`: 1024 is out of range 65536..=67108864"],
    );
}

#[test]
fn on_damage_values() {
    let cam = |v: &str| cam_with("sim://a", &format!("on_damage = {v}\n"));
    assert_err(
        &cam("\"drop\""),
        4,
        &["field `on_damage` in [[camera]]: unknown variant `drop`, expected `drop-until-keyframe` or `forward`"],
    );
    // The Rust spelling is not the file's.
    assert_err(&cam("\"DropUntilKeyframe\""), 4, &["unknown variant"]);
    assert_err(
        &cam("1"),
        4,
        &["field `on_damage` in [[camera]]: wanted string"],
    );
    assert_err(
        "[defaults]\non_damage = \"ignore\"\n",
        2,
        &["field `on_damage` in [defaults]: unknown variant `ignore`"],
    );
    assert_eq!(OnDamage::default(), OnDamage::DropUntilKeyframe);
    assert_eq!(OnDamage::DropUntilKeyframe.as_str(), "drop-until-keyframe");
    assert_eq!(OnDamage::Forward.to_string(), "forward");
}

#[test]
fn refresh_timeout_range() {
    let cam = |v: &str| cam_with("sim://a", &format!("refresh_timeout = {v}\n"));
    assert_eq!(
        ok(&cam("1")).cameras[0].refresh_timeout,
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        ok(&cam("600.0")).cameras[0].refresh_timeout,
        Some(Duration::from_secs(600))
    );
    assert_err(
        &cam("0.5"),
        4,
        &["camera \"lobby\": field `refresh_timeout`: 0.5 is out of range 1..=600 (seconds)"],
    );
    assert_err(&cam("601"), 4, &["601 is out of range 1..=600"]);
    assert_err(&cam("0"), 4, &["0 is out of range"]);
    assert_err(&cam("-5"), 4, &["-5 is out of range"]);
    assert_err(&cam("nan"), 4, &["NaN is out of range"]);
    assert_err(&cam("inf"), 4, &["inf is out of range"]);
    assert_err(
        &cam("\"5s\""),
        4,
        &["field `refresh_timeout` in [[camera]]: invalid type: string \"5s\", expected a number (integer or float)"],
    );
    assert_err(
        "[defaults]\n\n\nrefresh_timeout = 1000\n",
        4,
        &["[defaults] field `refresh_timeout`: 1000 is out of range 1..=600"],
    );
}

#[test]
fn automatic_values() {
    let mut a = ok(&with_url("sim://a")).cameras.remove(0);
    assert_eq!(a.network_cache(true), Duration::from_millis(200));
    assert_eq!(a.network_cache(false), Duration::ZERO);
    a.network_cache_ms = Some(50);
    assert_eq!(a.network_cache(false), Duration::from_millis(50));
    assert_eq!(a.network_cache(true), Duration::from_millis(50));

    let s = Duration::from_secs;
    assert_eq!(a.refresh_timeout, None);
    assert_eq!(refresh_timeout_for(a.refresh_timeout, None), s(4));
    assert_eq!(refresh_timeout_for(a.refresh_timeout, Some(s(1))), s(4));
    assert_eq!(refresh_timeout_for(a.refresh_timeout, Some(s(5))), s(10));
    assert_eq!(refresh_timeout_for(Some(s(3)), Some(s(5))), s(3));
}

#[test]
fn onvif_urls() {
    let cam = |u: &str| cam_with("rtsp://cam/x", &format!("\nonvif_url = \"{u}\"\n"));
    let c = ok(&cam("http://192.0.2.10:8080/onvif/device_service"));
    assert_eq!(
        c.cameras[0].onvif_url.as_ref().unwrap().as_str(),
        "http://192.0.2.10:8080/onvif/device_service"
    );
    let (line, message) = err(&cam("https://192.0.2.10/onvif/device_service"));
    assert_eq!(line, 5);
    assert_eq!(
        message,
        "camera \"lobby\": field `onvif_url`: https:// is not supported yet (use http://)"
    );
    assert_err(
        &cam("rtsp://192.0.2.10/onvif"),
        5,
        &["field `onvif_url`: scheme \"rtsp\" is not supported (use http://)"],
    );
    assert_err(
        &cam("http://admin:s3cret@192.0.2.10/onvif/device_service"),
        5,
        &["field `onvif_url`: must not contain credentials; ONVIF requests use the camera's user name and password"],
    );
    assert_err(&cam("http://admin@192.0.2.10/onvif"), 5, &["credentials"]);
    assert_err(&cam("http://:s3cret@192.0.2.10/onvif"), 5, &["credentials"]);
    assert_err(
        &cam("http://"),
        5,
        &["field `onvif_url`: not a valid URL (empty host)"],
    );
    assert_err(&cam("/onvif/device_service"), 5, &["not a valid URL"]);
    assert_err(&cam("unix:/run/onvif"), 5, &["scheme \"unix\""]);
    assert_err(
        &cam_with("rtsp://cam/x", "onvif_url = 80\n"),
        4,
        &["field `onvif_url` in [[camera]]: invalid type: integer"],
    );
    // Per camera only.
    assert_err(
        "[defaults]\nonvif_url = \"http://192.0.2.10/\"\n",
        2,
        &["unknown field `onvif_url` in [defaults]"],
    );
    // Checked on disabled cameras too.
    assert_err(
        &cam_with(
            "rtsp://cam/x",
            "enabled = false\nonvif_url = \"https://h/\"\n",
        ),
        5,
        &["https:// is not supported yet"],
    );
}

#[test]
fn faults_flaky_example() {
    let c = ok(r#"
[[camera]]
id = "flaky"
url = "sim://flaky"
on_damage = "drop-until-keyframe"
[camera.faults]
seed = 7
truncate = 0.02
"#);
    let flaky = &c.cameras[0];
    assert_eq!(flaky.on_damage, OnDamage::DropUntilKeyframe);
    assert_eq!(
        flaky.faults,
        Some(Faults {
            seed: 7,
            truncate: 0.02,
            ..Faults::default()
        })
    );
}

#[test]
fn faults_every_key() {
    let c = ok(r#"[[camera]]
id = "sim"
url = "sim://lobby"

[camera.faults]
seed = 0
truncate = 0.1
truncate_resend = 0.2
garbage = 0.3
udp_loss = 0.4
udp_reorder = 1
udp_duplicate = 0
stall_every_s = 30
stall_ms = 60000
ssrc_change_every_s = 12.5
timestamp_jump_every_s = 0.5
reboot_every_s = 600
require_rr_s = 8
sprop_only = true
honour_pli = false

[[camera.rtp_out]]
destination = "127.0.0.1:5004"
"#);
    let sim = &c.cameras[0];
    assert_eq!(
        sim.faults,
        Some(Faults {
            seed: 0,
            truncate: 0.1,
            truncate_resend: 0.2,
            garbage: 0.3,
            stall_every_s: 30.0,
            stall_ms: 60_000,
            udp_loss: 0.4,
            udp_reorder: 1.0,
            udp_duplicate: 0.0,
            ssrc_change_every_s: 12.5,
            timestamp_jump_every_s: 0.5,
            reboot_every_s: 600.0,
            require_rr_s: 8.0,
            sprop_only: true,
            honour_pli: false,
        })
    );
    assert_eq!(
        sim.rtp_out.len(),
        1,
        "tables after [camera.faults] still count"
    );

    // An empty table is the defaults; so is the inline form.
    let c = ok(&cam_with("sim://a", "[camera.faults]\n"));
    assert_eq!(c.cameras[0].faults, Some(Faults::default()));
    let c = ok(&cam_with("sim://a", "faults = { udp_loss = 0.5 }\n"));
    assert_eq!(
        c.cameras[0].faults,
        Some(Faults {
            udp_loss: 0.5,
            ..Faults::default()
        })
    );
    // Only the camera whose table it is.
    let c = ok(&format!(
        "{}[camera.faults]\nseed = 3\n[[camera]]\nid = \"b\"\nurl = \"sim://b\"\n",
        with_url("sim://a")
    ));
    assert_eq!(c.cameras[0].faults.as_ref().map(|f| f.seed), Some(3));
    assert_eq!(c.cameras[1].faults, None);
}

#[test]
fn faults_need_a_sim_camera() {
    let (line, message) = err(&cam_with(
        "rtsp://192.0.2.10/ch1",
        "\n[camera.faults]\nseed = 7\n",
    ));
    assert_eq!(line, 5, "the line of the [camera.faults] header");
    assert_eq!(
        message,
        "camera \"lobby\": [camera.faults] needs a sim:// camera; this one's url (line 3) is rtsp://"
    );
    // Inline form: the line of the table.
    assert_err(
        &cam_with("rtsp://192.0.2.10/ch1", "faults = {}\n"),
        4,
        &["[camera.faults] needs a sim:// camera"],
    );
    // A disabled camera too, and the credentials stay out of the message.
    assert_err(
        &cam_with(
            "rtsp://admin:s3cret@192.0.2.10/ch1",
            "enabled = false\n[camera.faults]\n",
        ),
        5,
        &["needs a sim:// camera"],
    );
    // Not a [defaults] key.
    assert_err(
        "[defaults]\n[defaults.faults]\nseed = 1\n",
        2,
        &["unknown field `faults` in [defaults]"],
    );
}

#[test]
fn faults_errors() {
    let f = |lines: &str| cam_with("sim://a", &format!("[camera.faults]\nseed = 1\n{lines}"));
    // Line 6 is the first of `lines`.
    assert_err(
        &f("truncte = 0.1\n"),
        6,
        &["unknown field `truncte` in [camera.faults], expected one of `seed`, `truncate`,"],
    );
    for key in [
        "truncate",
        "truncate_resend",
        "garbage",
        "udp_loss",
        "udp_reorder",
        "udp_duplicate",
    ] {
        let ok_text = f(&format!("{key} = 1.0\n"));
        ok(&ok_text);
        assert_err(
            &f(&format!("{key} = 1.5\n")),
            6,
            &[&format!(
                "camera \"lobby\": [camera.faults] field `{key}`: 1.5 is out of range 0.0..=1.0 (a probability)"
            )],
        );
        assert_err(&f(&format!("{key} = -0.1\n")), 6, &["-0.1 is out of range"]);
        assert_err(&f(&format!("{key} = nan\n")), 6, &["NaN is out of range"]);
        assert_err(
            &f(&format!("{key} = \"5%\"\n")),
            6,
            &[&format!(
                "field `{key}` in [camera.faults]: invalid type: string \"5%\", expected a number"
            )],
        );
    }
    for key in [
        "stall_every_s",
        "ssrc_change_every_s",
        "timestamp_jump_every_s",
        "reboot_every_s",
        "require_rr_s",
    ] {
        ok(&f(&format!("{key} = 0\n")));
        ok(&f(&format!("{key} = 86400.5\n")));
        assert_err(
            &f(&format!("{key} = -1\n")),
            6,
            &[&format!(
                "[camera.faults] field `{key}`: -1 is not a period in seconds (0 for never"
            )],
        );
        assert_err(&f(&format!("{key} = inf\n")), 6, &["inf is not a period"]);
        assert_err(
            &f(&format!("{key} = true\n")),
            6,
            &[&format!(
                "field `{key}` in [camera.faults]: invalid type: boolean"
            )],
        );
    }
    assert_err(
        &f("stall_ms = 60001\n"),
        6,
        &["[camera.faults] field `stall_ms`: 60001 is out of range 0..=60000"],
    );
    assert_err(&f("stall_ms = -1\n"), 6, &["-1 is out of range 0..=60000"]);
    assert_err(
        &f("stall_ms = 1.5\n"),
        6,
        &["field `stall_ms` in [camera.faults]: invalid type: floating point"],
    );
    assert_err(
        &cam_with("sim://a", "[camera.faults]\n\nseed = -1\n"),
        6,
        &["[camera.faults] field `seed`: -1 is out of range 0..="],
    );
    assert_err(
        &cam_with("sim://a", "[camera.faults]\nseed = \"7\"\n"),
        5,
        &["field `seed` in [camera.faults]: invalid type: string"],
    );
    for key in ["sprop_only", "honour_pli"] {
        assert_err(
            &f(&format!("{key} = \"yes\"\n")),
            6,
            &[&format!(
                "field `{key}` in [camera.faults]: invalid type: string \"yes\", expected a boolean"
            )],
        );
    }
    assert_err(&f("seed = 2\n"), 6, &["duplicate key `seed`"]);
    // A second [camera.faults] for the same camera.
    assert_err(
        &cam_with("sim://a", "[camera.faults]\n[camera.faults]\n"),
        5,
        &["duplicate key"],
    );
}

#[test]
fn debug_shows_new_fields() {
    let c = ok(&cam_with(
        "sim://a",
        "username = \"u\"\npassword = \"s3cret\"\nonvif_url = \"http://192.0.2.10/onvif/device_service\"\n\
         [camera.faults]\nseed = 9\n",
    ));
    let shown = format!("{:?}", c.cameras[0]);
    for part in [
        "network_cache_ms: None",
        "socket_buffer_bytes: 2097152",
        "on_damage: DropUntilKeyframe",
        "refresh_timeout: None",
        "onvif_url: Some(Url { scheme: \"http\"",
        "path: \"/onvif/device_service\"",
        "seed: 9",
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn truncated_new_keys_never_panic() {
    let text = "[defaults]\nnetwork_cache_ms = 300\nsocket_buffer_bytes = 4194304\non_damage = \"forward\"\nrefresh_timeout = 2.5\n\n[[camera]]\nid = \"a\"\nurl = \"sim://a\"\nonvif_url = \"http://192.0.2.10/onvif/device_service\"\n[camera.faults]\nseed = 7\ntruncate = 0.02\nstall_every_s = 30\nstall_ms = 500\nhonour_pli = false\n";
    ok(text);
    for end in 0..=text.len() {
        if let Err(ConfigError::Invalid { line, .. }) = parse(&text[..end]) {
            assert!(line <= text[..end].lines().count() + 1, "line {line}");
        }
    }
}

#[test]
fn cluster_defaults_and_node_settings() {
    assert_eq!(ok("").cluster, None);
    let c = ok("[server]\nlisten = \"10.0.0.5:8080\"\nallow_unauthenticated = true\n[rtsp_server]\nenabled = false\n\
                [cluster]\netcd = [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nnode_id = \"gw-1\"\n")
        .cluster
        .unwrap();
    assert_eq!(c.etcd.len(), 2);
    assert_eq!(c.node_id, "gw-1");
    assert_eq!(c.advertise_url.as_str(), "http://10.0.0.5:8080/");
    assert_eq!(c.advertise_rtsp, None);
    assert_eq!(c.lease_ttl, Duration::from_secs(3));
    assert_eq!(c.prefix, "/camgate/");
    assert_eq!(
        (c.max_cameras, c.tls.clone(), c.credentials.is_none()),
        (None, None, true)
    );
    let c = ok("[cluster]\netcd = [\"https://etcd:2379\"]\nnode_id = \"a\"\nlease_ttl = 5\nprefix = \"/site-1/\"\n\
                max_cameras = 40\nadvertise_url = \"http://gw-a:8080\"\nadvertise_rtsp = \"rtsp://gw-a:8554\"\n")
        .cluster
        .unwrap();
    assert_eq!(c.lease_ttl, Duration::from_secs(5));
    assert_eq!((c.prefix.as_str(), c.max_cameras), ("/site-1/", Some(40)));
    assert_eq!(c.advertise_rtsp.unwrap().as_str(), "rtsp://gw-a:8554");
    assert!(c.tls.is_some(), "an https endpoint means TLS");
    // The environment names the node over the file.
    let env = |name: &str| (name == "CAMGATE_NODE_ID").then(|| OsString::from("pod-7"));
    let c = validate::parse(
        "[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\n",
        FILE,
        &env,
    )
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.node_id, "pod-7");
}

#[test]
fn cluster_errors_name_the_line_and_field() {
    assert_err(
        "[cluster]\nnode_id = \"a\"\n",
        0,
        &["[cluster] field `etcd`", "missing"],
    );
    assert_err(
        "[cluster]\netcd = [\"tcp://e:2379\"]\n",
        2,
        &["[cluster] field `etcd`", "not an etcd endpoint URL"],
    );
    assert_err(
        "[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a b\"\n",
        3,
        &["node_id", "not a node id"],
    );
    assert_err(
        "[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\nlease_ttl = 1\n",
        4,
        &["lease_ttl", "2 to 60"],
    );
    assert_err(
        "[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\nprefix = \"camgate\"\n",
        4,
        &["prefix", "start and end with '/'"],
    );
    assert_err(
        "[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\npassword = \"hunter2\"\n",
        4,
        &["password", "does not go in this file"],
    );
    let (_, message) =
        err("[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\npassword = \"hunter2\"\n");
    assert!(!message.contains("hunter2"));
    assert_err(
        "[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\nuser = \"camgate\"\n",
        4,
        &["user", "CAMGATE_ETCD_PASSWORD"],
    );
    assert_err(
        "[server]\nlisten = \"0.0.0.0:8080\"\nallow_unauthenticated = true\n[cluster]\netcd = [\"http://e:2379\"]\nnode_id = \"a\"\n",
        0,
        &["advertise_url", "0.0.0.0:8080"],
    );
}

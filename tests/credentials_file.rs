//! `credentials_file`: a camera's `username:password` in a file of mode
//! 0600 owned by the user camgate runs as; anything else is refused with
//! `FILE:LINE` and a sentence that says how to fix it, never the content.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use camgate::config::Config;

const SECRET: &str = "cr3d-file-s3cret";

/// A config in `dir` whose camera reads `file` (as written in the TOML).
fn write_config(dir: &Path, file: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("cameras.toml");
    std::fs::write(
        &path,
        format!("[[camera]]\nid = \"lobby\"\nurl = \"rtsp://192.0.2.10/ch1\"\n{extra}credentials_file = \"{file}\"\n"),
    )
    .unwrap();
    path
}

fn write_credentials(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_from_a_private_file_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    write_credentials(
        &dir.path().join("lobby.cred"),
        &format!("# lobby camera\nadmin:{SECRET}\n"),
        0o600,
    );
    let config = Config::load(&write_config(dir.path(), "lobby.cred", "")).unwrap();
    let c = config.cameras[0].credentials.clone().unwrap();
    assert_eq!(
        (c.username.as_str(), c.password.expose()),
        ("admin", SECRET)
    );
    assert!(!format!("{config:?}").contains(SECRET));
    assert!(!config.summary().contains(SECRET));
}

#[test]
fn group_or_world_readable_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("lobby.cred");
    write_credentials(&cred, &format!("admin:{SECRET}\n"), 0o644);
    let toml = write_config(dir.path(), cred.to_str().unwrap(), "");
    let err = Config::load(&toml).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:4: camera \"lobby\": field `credentials_file`: {} has mode 0644, so users other than its owner may read it; it must be 0600 or stricter (chmod 600 {})",
            toml.display(),
            cred.display(),
            cred.display()
        )
    );
    assert!(!err.contains(SECRET));

    // `camgate check` prints it and exits 2.
    let out = Command::new(env!("CARGO_BIN_EXE_camgate"))
        .arg("check")
        .arg(&toml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":4: camera \"lobby\": field `credentials_file`"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
}

#[test]
fn owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("lobby.cred");
    write_credentials(&cred, &format!("admin:{SECRET}\n"), 0o600);
    // Only root can give a file away. The suite runs as root (scripts/test
    // says so; the WebRTC tests need it for their network namespaces too),
    // so a failed chown fails the test rather than skipping the check.
    let chown = Command::new("chown").arg("65534").arg(&cred).status();
    assert!(
        chown.is_ok_and(|s| s.success()),
        "cannot chown {} to uid 65534: run the tests as root (scripts/test)",
        cred.display()
    );
    let err = Config::load(&write_config(dir.path(), "lobby.cred", ""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":4: camera \"lobby\": field `credentials_file`"),
        "{err}"
    );
    assert!(
        err.contains("is owned by uid 65534, but camgate runs as uid"),
        "{err}"
    );
    assert!(!err.contains(SECRET));
}

#[test]
fn bad_content_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("lobby.cred");
    for (text, want) in [
        ("", "holds no `username:password` line"),
        (SECRET, "line 1 has no `:`"),
        (":x", "the user name is empty"),
        ("a:b\nc:d\n", "lines 1 and 2 both hold credentials"),
    ] {
        write_credentials(&cred, text, 0o600);
        let err = Config::load(&write_config(dir.path(), "lobby.cred", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(!err.contains(SECRET), "{err}");
    }
    write_credentials(&cred, &format!("admin:{SECRET}"), 0o600);
    let err = Config::load(&write_config(
        dir.path(),
        "lobby.cred",
        "username = \"admin\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(":5: camera \"lobby\": field `credentials_file`: excludes `username`"),
        "{err}"
    );
    let err = Config::load(&write_config(dir.path(), "missing.cred", ""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open"), "{err}");
}

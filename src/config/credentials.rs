//! `credentials_file`: a camera's user name and password in a file of their
//! own, readable by the user camgate runs as and nobody else.
//!
//! The format is one line `username:password` (split at the first `:`, so
//! the password may contain `:`); blank lines and lines starting with `#`
//! are ignored. Messages never quote the file's content.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Larger files are not credentials files (and a mistaken path such as a
/// log file is not read whole).
const MAX_BYTES: u64 = 64 * 1024;

/// `path` resolved against the directory of the configuration file `file`
/// when it is relative.
pub(super) fn resolve(path: &str, file: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match Path::new(file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Reads `(username, password)` from `path` after checking that it is a
/// regular file, owned by the effective user of this process, with no
/// permission for group or others (0600, 0400). Errors are sentences that
/// say how to fix the file; they name the path, never its content.
pub(super) fn read(path: &Path) -> Result<(String, String), String> {
    let shown = path.display();
    // Checked before opening too: opening a FIFO would block.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(format!("{shown} is not a regular file")),
        Err(e) => return Err(format!("cannot open {shown}: {e}")),
        Ok(_) => {}
    }
    // The checks apply to the opened file, so a swap between check and
    // read changes nothing.
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} has mode {mode:04o}, so users other than its owner may read it; \
             it must be 0600 or stricter (chmod 600 {shown})"
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "{shown} is owned by uid {}, but camgate runs as uid {me}; \
             it must be owned by the user camgate runs as (chown {me} {shown})",
            meta.uid()
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "{shown} is {} bytes long; a credentials file holds one line username:password",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => format!("{shown} is not UTF-8 text"),
            _ => format!("cannot read {shown}: {e}"),
        })?;
    parse(&text).map_err(|what| format!("{shown}: {what}"))
}

/// The content of a credentials file: one `username:password` line besides
/// blank lines and `#` comments. Errors say what is wrong, never quoting.
pub(super) fn parse(text: &str) -> Result<(String, String), String> {
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((n, line)) = lines.next() else {
        return Err("holds no `username:password` line".into());
    };
    if let Some((m, _)) = lines.next() {
        return Err(format!(
            "lines {} and {} both hold credentials; write one `username:password` line",
            n + 1,
            m + 1
        ));
    }
    let Some((user, password)) = line.split_once(':') else {
        return Err(format!(
            "line {} has no `:`; write `username:password`",
            n + 1
        ));
    };
    if user.is_empty() {
        return Err(format!("line {}: the user name is empty", n + 1));
    }
    if user.chars().any(char::is_control) || password.chars().any(char::is_control) {
        return Err(format!(
            "line {}: control characters in the user name or password",
            n + 1
        ));
    }
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_one_line() {
        let ok = |t: &str| parse(t).unwrap();
        assert_eq!(ok("admin:s3cret\n"), ("admin".into(), "s3cret".into()));
        assert_eq!(ok("admin:a:b@c\r\n"), ("admin".into(), "a:b@c".into()));
        assert_eq!(ok("# lobby\n\nadmin:\n"), ("admin".into(), "".into()));
        assert_eq!(ok("admin: sp ace "), ("admin".into(), " sp ace ".into()));
        for bad in ["", "\n# only\n", "admin", ":pw", "a:b\nc:d\n", "a\u{1}:b"] {
            let err = parse(bad).unwrap_err();
            assert!(!err.contains("pw") || bad == ":pw" && !err.contains(":pw"));
        }
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        assert_eq!(
            resolve("lobby.cred", "/etc/camgate/cameras.toml"),
            Path::new("/etc/camgate/lobby.cred")
        );
        assert_eq!(
            resolve("lobby.cred", "cameras.toml"),
            Path::new("lobby.cred")
        );
        assert_eq!(
            resolve("/x/y", "/etc/camgate/cameras.toml"),
            Path::new("/x/y")
        );
    }

    #[test]
    fn checks_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred");
        std::fs::write(&path, "admin:top-secret-1\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read(&path).unwrap_err();
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains("top-secret-1"));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                read(&path).unwrap(),
                ("admin".into(), "top-secret-1".into())
            );
        }
        assert!(read(dir.path()).unwrap_err().contains("not a regular file"));
        assert!(read(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot open"));
    }
}

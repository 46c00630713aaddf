//! The layers of `src/` hold: a module imports only from layers below its
//! own, the protocol cores stay sans-IO (no tokio), and `unsafe` lives in
//! one module. Reads the source text, so it needs no build of the crate's
//! internals; `docs/architecture.md` explains the layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every top-level module of the library and its layer. A module may use
/// modules of a lower layer only: two modules of one layer know nothing of
/// each other, so no cycle can form. A new module must be placed here.
const LAYERS: &[(&str, u8)] = &[
    // Foundation: small leaf modules with no camgate imports.
    ("credentials", 0),
    ("redact", 0),
    ("password", 0),
    ("service", 0),
    ("sys", 0),
    ("tls", 0),
    ("codec_info", 0),
    // Sans-IO protocol cores.
    ("rtp", 1),
    ("h264", 2),
    ("aac", 2),
    ("rtsp", 2),
    // Configuration and the clients the camera task drives.
    ("config", 3),
    ("h265", 3),
    ("onvif", 3),
    // One task per camera: session driver, supervisor, hub, consumers.
    ("camera", 4),
    // Who may do what: the policy every listener enforces.
    ("access", 4),
    // What hangs off cameras: egress, the simulator, health, metrics, probe.
    ("egress", 5),
    ("sim", 5),
    ("health", 5),
    ("metrics", 5),
    ("probe", 5),
    // Applying configuration changes to the running cameras.
    ("reload", 6),
    // Gateways sharing cameras through etcd.
    ("cluster", 6),
    // HTTP: the API, WHEP, pages, metrics and health routes.
    ("http", 7),
    // Wiring everything together.
    ("gateway", 8),
];

/// The sans-IO protocol cores: no tokio, no sockets, no clock.
const SANS_IO: &[&str] = &["rtp", "h264", "h265", "rtsp", "aac"];

/// The one file allowed `unsafe`.
const UNSAFE_ALLOWED: &str = "src/sys.rs";

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The source with comments, string and char literals blanked out, so
/// that only code is searched.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'#') | Some(b'"')) && !ident(b, i) {
            // Raw string r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == b'\'')
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Whether the byte before `i` continues an identifier.
fn ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The top-level modules named after `crate::` in `code`, with the line of
/// each: `crate::camera::Hub` and `use crate::{camera::Hub, config}` both
/// count, and so do `super::` paths that climb to the crate root from a
/// file `levels` modules below it.
fn crate_imports(code: &str, levels: usize) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while let Some(off) = code[i..].find("crate::") {
        let at = i + off;
        i = at + "crate::".len();
        if ident(b, at) {
            continue; // e.g. `mycrate::`
        }
        let line = code[..at].matches('\n').count() + 1;
        if b.get(i) == Some(&b'{') {
            // A brace group: the first path segment of each item at depth 0.
            let mut depth = 0;
            let mut j = i + 1;
            let mut start = j;
            while j < b.len() {
                match b[j] {
                    b'{' => depth += 1,
                    b'}' if depth == 0 => break,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => {
                        push_first_segment(&code[start..j], line, &mut found);
                        start = j + 1;
                    }
                    _ => {}
                }
                j += 1;
            }
            push_first_segment(&code[start..j], line, &mut found);
        } else {
            push_first_segment(&code[i..], line, &mut found);
        }
    }
    // `super::` paths that climb to the crate root: from a file `levels`
    // modules below the root, inside `inline` inline `mod x { }` blocks,
    // `levels + inline` of them.
    let mut depth = 0usize;
    let mut mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                if mods.last() == Some(&depth) {
                    mods.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'm' if code[i..].starts_with("mod ") && !ident(b, i) => {
                let rest = &code[i + 4..];
                let name_len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if rest[name_len..].trim_start().starts_with('{') {
                    mods.push(depth + 1);
                }
                i += 4;
            }
            b's' if code[i..].starts_with("super::") && !ident(b, i) => {
                let at = i;
                let mut n = 0;
                while code[i..].starts_with("super::") {
                    n += 1;
                    i += "super::".len();
                }
                if n >= levels + mods.len() {
                    let line = code[..at].matches('\n').count() + 1;
                    let skip = n - (levels + mods.len());
                    if skip == 0 {
                        push_first_segment(&code[i..], line, &mut found);
                    } else {
                        found.push(("super".to_owned(), line));
                    }
                }
            }
            _ => i += 1,
        }
    }
    found
}

fn push_first_segment(path: &str, line: usize, found: &mut Vec<(String, usize)>) {
    let seg: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if !seg.is_empty() && seg != "self" {
        found.push((seg, line));
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to, and how many modules
/// below the crate root the file's own module is (`src/camera/mod.rs` and
/// `src/health.rs`: 1, `src/camera/session.rs`: 2, `src/rtsp/client/tests.rs`:
/// 3); `None` for the crate roots.
fn module_of(rel: &Path) -> Option<(String, usize)> {
    let mut parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    if parts.len() > 1 && parts.last() == Some(&"mod.rs") {
        parts.pop();
    }
    match parts.as_slice() {
        ["lib.rs"] | ["main.rs"] | [] => None,
        [first, ..] => Some((first.trim_end_matches(".rs").to_owned(), parts.len())),
    }
}

/// The violations of one file's code, as sentences.
fn check_file(rel: &Path, src: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = Path::new("src").join(rel);
    let shown = shown.display();
    let code = code_only(src);
    let Some((module, levels)) = module_of(rel) else {
        return problems;
    };
    let Some(own) = layer(&module) else {
        problems.push(format!(
            "{shown}: module `{module}` has no layer: add it to LAYERS in tests/architecture.rs"
        ));
        return problems;
    };
    for (used, line) in crate_imports(&code, levels) {
        if used == module {
            continue;
        }
        match layer(&used) {
            Some(l) if l < own => {}
            Some(l) => problems.push(format!(
                "{shown}:{line}: `{module}` (layer {own}) uses `crate::{used}` (layer {l}); \
                 a module may use only layers below its own"
            )),
            None => problems.push(format!(
                "{shown}:{line}: `crate::{used}` is not in LAYERS (tests/architecture.rs)"
            )),
        }
    }
    if SANS_IO.contains(&module.as_str()) {
        for (n, l) in code.lines().enumerate() {
            if l.contains("tokio::") || l.trim_start().starts_with("use tokio") {
                problems.push(format!(
                    "{shown}:{}: `{module}` is a sans-IO core and must not use tokio",
                    n + 1
                ));
            }
        }
    }
    if shown.to_string() != UNSAFE_ALLOWED {
        for (n, l) in code.lines().enumerate() {
            let b = l.as_bytes();
            if l.match_indices("unsafe").any(|(i, _)| {
                !ident(b, i)
                    && !b
                        .get(i + 6)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            }) {
                problems.push(format!(
                    "{shown}:{}: `unsafe` outside {UNSAFE_ALLOWED}",
                    n + 1
                ));
            }
        }
    }
    problems
}

#[test]
fn layers_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap();
        if let Some((m, _)) = module_of(rel) {
            *seen.entry(m).or_default() += 1;
        }
        let src = std::fs::read_to_string(path).unwrap();
        problems.extend(check_file(rel, &src));
    }
    assert!(
        problems.is_empty(),
        "the layers of src/ are broken:\n{}",
        problems.join("\n")
    );
    // The table names no module that is gone.
    for (m, _) in LAYERS {
        assert!(
            seen.contains_key(*m) || *m == "tls",
            "LAYERS names `{m}`, which is not a module of src/"
        );
    }
    assert!(seen.len() >= 15, "too few modules found: {seen:?}");
}

#[test]
fn unsafe_is_denied_at_the_crate_roots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in ["lib.rs", "main.rs"] {
        let src = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            src.contains("#![deny(unsafe_code)]"),
            "src/{file} must say #![deny(unsafe_code)]"
        );
    }
}

/// The checker itself finds what it must find, and ignores comments,
/// strings and the module's own paths.
#[test]
fn the_checker_sees_wrong_imports() {
    let up = check_file(Path::new("rtp/jitter.rs"), "use crate::camera::Hub;\n");
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(up[0].contains("src/rtp/jitter.rs:1"), "{up:?}");
    let group = check_file(
        Path::new("camera/x.rs"),
        "fn f() {}\nuse crate::{config::Config, http::{auth, AppState}};\n",
    );
    assert_eq!(group.len(), 1, "{group:?}");
    assert!(group[0].contains(":2:") && group[0].contains("crate::http"));
    let sideways = check_file(Path::new("sim/mod.rs"), "let x = crate::egress::rtp::f();");
    assert_eq!(sideways.len(), 1, "same layer: {sideways:?}");
    let escape = check_file(
        Path::new("rtsp/client/tests.rs"),
        "use super::super::super::camera;\nuse super::super::sdp;",
    );
    assert_eq!(escape.len(), 1, "{escape:?}");
    let inline = check_file(
        Path::new("rtp/jitter.rs"),
        "mod tests {\n use super::*;\n use super::super::super::camera::Hub;\n}\nuse super::rtcp;",
    );
    assert_eq!(inline.len(), 1, "{inline:?}");
    assert!(inline[0].contains(":3:"), "{inline:?}");
    let fine = check_file(
        Path::new("camera/x.rs"),
        "// crate::http::AppState\nlet s = \"crate::http\"; let c = '\"'; use crate::camera::hub; use super::super::h264;\n/* unsafe crate::egress */ fn f<'a>(x: &'a str) {}",
    );
    assert!(fine.is_empty(), "{fine:?}");
    let io = check_file(Path::new("h264/x.rs"), "use tokio::net::UdpSocket;");
    assert_eq!(io.len(), 1, "{io:?}");
    let unsafe_code = check_file(Path::new("camera/x.rs"), "fn f() { unsafe { g() } }");
    assert_eq!(unsafe_code.len(), 1, "{unsafe_code:?}");
    let unknown = check_file(Path::new("plugins/mod.rs"), "");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
}

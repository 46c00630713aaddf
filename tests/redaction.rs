//! No password survives into anything camgate shows, whatever characters it
//! holds: property tests over arbitrary passwords for URL redaction (logs,
//! error messages, SDPs), the parsed configuration (`Debug`, `camgate
//! check`'s summary) and configuration errors. `tests/password_leak.rs`
//! searches a running gateway's logs, API, metrics and pages.

use camgate::config::Config;
use camgate::redact::redact_url;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;

/// A password with a recognisable head and tail around an arbitrary core,
/// so "the output does not contain it" cannot pass or fail by accident.
fn wrap(core: &str) -> String {
    format!("Xy{core}Zw")
}

/// What may be typed into a URL's userinfo without percent-encoding, as a
/// user would: any printable ASCII but space, quote and angle brackets,
/// including `/ ? # : @ %`.
const RAW_URL_CHARS: &str = "[!#-;=?-~]{1,24}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn redact_url_hides_raw_passwords(core in RAW_URL_CHARS, path in "[a-z0-9/]{0,12}") {
        let p = wrap(&core);
        for text in [
            format!("rtsp://admin:{p}@192.0.2.10:554/{path}"),
            format!("camera \"lobby\": cannot connect to rtsp://admin:{p}@192.0.2.10/{path}: refused"),
            format!("v=0\r\na=control:rtsp://admin:{p}@192.0.2.10/{path}/track1\r\nm=audio 0 RTP/AVP 0\r\n"),
            format!("rtsps://{p}@cam.example/{path}"),
        ] {
            let shown = redact_url(&text);
            prop_assert!(!shown.contains(&p), "{text:?} -> {shown:?}");
            prop_assert!(shown.contains("***@"), "{shown:?}");
        }
    }

    #[test]
    fn redact_url_hides_encoded_passwords(core in "\\PC{1,24}") {
        let p = wrap(&core);
        let mut url = url::Url::parse("rtsp://192.0.2.10:554/Streaming/Channels/101").unwrap();
        url.set_username("admin").unwrap();
        url.set_password(Some(&p)).unwrap();
        let encoded = url.password().unwrap().to_owned();
        let shown = redact_url(url.as_str());
        prop_assert_eq!(&shown, "rtsp://***@192.0.2.10:554/Streaming/Channels/101");
        prop_assert!(!shown.contains(&encoded));
    }

    #[test]
    fn config_never_shows_a_password(core in "\\PC{1,24}") {
        let p = wrap(&core);
        let enc = utf8_percent_encode(&p, NON_ALPHANUMERIC).to_string();
        let quoted = toml::Value::String(p.clone()).to_string();
        let text = format!(
            "[[camera]]\nid = \"in-url\"\nurl = \"rtsp://admin:{enc}@192.0.2.10/ch1\"\n\
             [[camera]]\nid = \"in-field\"\nurl = \"rtsp://192.0.2.11/ch1\"\nusername = \"admin\"\npassword = {quoted}\n"
        );
        let config = Config::parse(&text, "cameras.toml").unwrap();
        for cam in &config.cameras {
            let c = cam.credentials.as_ref().unwrap();
            prop_assert_eq!(c.password.expose(), p.as_str());
        }
        for shown in [format!("{config:?}"), format!("{config:#?}"), config.summary()] {
            prop_assert!(!shown.contains(&p), "{shown}");
            prop_assert!(!shown.contains(&enc), "{shown}");
        }
    }

    #[test]
    fn config_errors_never_show_a_password(core in "\\PC{1,24}", raw in RAW_URL_CHARS) {
        let p = wrap(&core);
        let quoted = toml::Value::String(p.clone()).to_string();
        // A password beside a mistake in the same camera.
        let bad_field = format!(
            "[[camera]]\nid = \"lobby\"\nurl = \"rtsp://192.0.2.10/ch1\"\nusername = \"admin\"\npassword = {quoted}\ntransport = \"carrier-pigeon\"\n"
        );
        // A password given twice.
        let twice = format!(
            "[[camera]]\nid = \"lobby\"\nurl = \"rtsp://admin:{}@192.0.2.10/ch1\"\npassword = {quoted}\n",
            utf8_percent_encode(&p, NON_ALPHANUMERIC)
        );
        // A password typed into the URL without percent-encoding.
        let r = wrap(&raw);
        let unencoded = format!(
            "[[camera]]\nid = \"lobby\"\nurl = {}\n",
            toml::Value::String(format!("rtsp://admin:{r}@192.0.2.10/ch1"))
        );
        for (text, secret) in [(&bad_field, &p), (&twice, &p), (&unencoded, &r)] {
            if let Err(e) = Config::parse(text, "cameras.toml") {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(secret.as_str()), "{shown}");
                prop_assert!(shown.contains("cameras.toml:"), "{shown}");
            } else {
                // Only the unencoded URL may parse (a password whose
                // characters need no encoding): then it is shown nowhere.
                let config = Config::parse(text, "cameras.toml").unwrap();
                prop_assert!(std::ptr::eq(text, &unencoded));
                let shown = format!("{config:?}{}", config.summary());
                prop_assert!(!shown.contains(secret.as_str()), "{shown}");
            }
        }
    }
}

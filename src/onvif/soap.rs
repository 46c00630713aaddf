//! SOAP 1.2 request envelopes for the ONVIF operations, with the WS-Security
//! header of the OASIS UsernameToken Profile 1.0 (PasswordDigest), and the
//! xsd:dateTime clock its `Created` element needs.

use base64::Engine as _;
use quick_xml::escape::escape;
use sha1::{Digest as _, Sha1};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{Operation, DEVICE_NS, MEDIA_NS};

/// Namespace of SOAP 1.2 envelopes.
pub(crate) const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// Namespace of SOAP 1.1 envelopes (older cameras answer with it).
pub(crate) const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Namespace of the WS-Security header.
pub(crate) const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// Namespace of `wsu:Created`.
pub(crate) const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// `Type` of a WS-Security password that is a digest.
pub(crate) const PASSWORD_DIGEST_TYPE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
/// `EncodingType` of a base64 nonce.
const BASE64_ENCODING_TYPE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// A SOAP 1.2 envelope around `body`, with `header` (already XML) if any.
pub(crate) fn envelope(header: Option<&str>, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="{}">"#,
            "{}<s:Body>{}</s:Body></s:Envelope>"
        ),
        SOAP12_NS,
        header.map_or(String::new(), |h| format!("<s:Header>{h}</s:Header>")),
        body
    )
}

/// The WS-Security header with a UsernameToken PasswordDigest.
pub(crate) fn security_header(user: &str, password: &str, nonce: &[u8], created: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="{}" xmlns:wsu="{}">"#,
            "<wsse:UsernameToken><wsse:Username>{}</wsse:Username>",
            r#"<wsse:Password Type="{}">{}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="{}">{}</wsse:Nonce>"#,
            "<wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        WSSE_NS,
        WSU_NS,
        escape(user),
        PASSWORD_DIGEST_TYPE,
        password_digest(nonce, created, password),
        BASE64_ENCODING_TYPE,
        b64.encode(nonce),
        escape(created)
    )
}

/// `Base64(SHA1(nonce + created + password))`, the UsernameToken digest.
pub(crate) fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// An operation element without arguments.
pub(crate) fn empty_body(op: Operation) -> String {
    format!(r#"<m:{} xmlns:m="{}"/>"#, op.name(), op.namespace())
}

/// GetCapabilities for the Media category only.
pub(crate) fn get_capabilities_body() -> String {
    format!(
        r#"<m:GetCapabilities xmlns:m="{DEVICE_NS}"><m:Category>Media</m:Category></m:GetCapabilities>"#
    )
}

/// GetServices without the (large) capability blocks.
pub(crate) fn get_services_body() -> String {
    format!(
        r#"<m:GetServices xmlns:m="{DEVICE_NS}"><m:IncludeCapability>false</m:IncludeCapability></m:GetServices>"#
    )
}

/// SetSynchronizationPoint for `token`.
pub(crate) fn set_synchronization_point_body(token: &str) -> String {
    format!(
        r#"<m:SetSynchronizationPoint xmlns:m="{MEDIA_NS}"><m:ProfileToken>{}</m:ProfileToken></m:SetSynchronizationPoint>"#,
        escape(token)
    )
}

// ---------------------------------------------------------------------------
// Clock

/// Seconds since the Unix epoch by the system clock.
pub(crate) fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as `YYYY-MM-DDThh:mm:ssZ` (xsd:dateTime in UTC, as
/// `wsu:Created` wants). Times outside years 0..=9999 are clamped.
pub(crate) fn format_utc(unix_secs: i64) -> String {
    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what RFC 3339 spells.
    const FIRST: i64 = -62_167_219_200;
    const LAST: i64 = 253_402_300_799;
    OffsetDateTime::from_unix_timestamp(unix_secs.clamp(FIRST, LAST))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Unix seconds of an xsd:dateTime: RFC 3339, or without an offset (read
/// as UTC, as ONVIF devices that omit it mean). Fractions are dropped.
pub(crate) fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()?;
    Some(t.to_offset(UtcOffset::UTC).unix_timestamp())
}

/// Unix seconds of a calendar date and time in UTC, as the ONVIF schema's
/// `tt:DateTime` spells it. A leap second (60) reads as 59.
pub(crate) fn unix_from_fields(
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
) -> Option<i64> {
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms(hour, minute, second.min(59)).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// The UTC calendar fields of Unix seconds: year, month, day, hour,
/// minute, second (for the sim's GetSystemDateAndTime answer).
pub(crate) fn fields_from_unix(unix_secs: i64) -> Option<(i32, u8, u8, u8, u8, u8)> {
    let t = OffsetDateTime::from_unix_timestamp(unix_secs).ok()?;
    Some((
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::xml;

    #[test]
    fn digest_matches_the_onvif_programmers_guide_example() {
        // ONVIF Application Programmer's Guide, 6.1.1.3; also checked with
        // Python: b64encode(sha1(b64decode(nonce) + created + password)).
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("LKqI6G/AikKCQrN0zqZFlg==")
            .unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn security_header_carries_digest_not_password() {
        let h = security_header(
            "ad<min",
            "s3cret-pw",
            b"0123456789abcdef",
            "2024-01-02T03:04:05Z",
        );
        let root = xml::parse(envelope(Some(&h), "<x/>").as_bytes()).unwrap();
        let token = root.find("UsernameToken").unwrap();
        assert_eq!(token.namespace.as_deref(), Some(WSSE_NS));
        assert_eq!(token.child("Username").unwrap().text, "ad<min");
        assert_eq!(
            token.child("Password").unwrap().attr("Type"),
            Some(PASSWORD_DIGEST_TYPE)
        );
        let created = token.child("Created").unwrap();
        assert_eq!(created.text, "2024-01-02T03:04:05Z");
        assert_eq!(created.namespace.as_deref(), Some(WSU_NS));
        assert!(!h.contains("s3cret-pw"));
    }

    #[test]
    fn utc_time_round_trips() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        // Values from Python's calendar.timegm.
        assert_eq!(format_utc(1_284_623_445), "2010-09-16T07:50:45Z");
        assert_eq!(format_utc(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(format_utc(2_147_483_648), "2038-01-19T03:14:08Z");
        for t in [-86_401, 0, 951_868_799, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_utc(&format_utc(t)), Some(t));
        }
        assert_eq!(format_utc(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_utc(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(parse_utc("2010-09-16T07:50:45.123Z"), Some(1_284_623_445));
        assert_eq!(parse_utc("2010-09-16T07:50:45+00:00"), Some(1_284_623_445));
        assert_eq!(parse_utc("2010-09-16T07:50:45"), Some(1_284_623_445));
        // An offset is honoured rather than ignored.
        assert_eq!(parse_utc("2010-09-16T09:50:45+02:00"), Some(1_284_623_445));
        assert_eq!(parse_utc("2010-13-16T07:50:45Z"), None);
        assert_eq!(parse_utc("2010-02-30T07:50:45Z"), None);
        assert_eq!(parse_utc("+010-09-16T07:50:45Z"), None);
        assert_eq!(parse_utc("yesterday"), None);
    }

    #[test]
    fn calendar_fields_convert_both_ways() {
        assert_eq!(
            unix_from_fields(2010, 9, 16, 7, 50, 45),
            Some(1_284_623_445)
        );
        assert_eq!(
            unix_from_fields(2016, 12, 31, 23, 59, 60),
            Some(1_483_228_799)
        );
        assert_eq!(unix_from_fields(2010, 13, 16, 7, 50, 45), None);
        assert_eq!(unix_from_fields(2011, 2, 29, 0, 0, 0), None);
        assert_eq!(unix_from_fields(2010, 9, 16, 24, 0, 0), None);
        assert_eq!(
            fields_from_unix(1_284_623_445),
            Some((2010, 9, 16, 7, 50, 45))
        );
        assert_eq!(fields_from_unix(i64::MAX), None);
    }

    #[test]
    fn bodies_escape_what_they_embed() {
        let body = set_synchronization_point_body("a<b&c");
        assert!(
            body.contains("<m:ProfileToken>a&lt;b&amp;c</m:ProfileToken>"),
            "{body}"
        );
        let root = xml::parse(envelope(None, &body).as_bytes()).unwrap();
        let op = root.find("SetSynchronizationPoint").unwrap();
        assert_eq!(op.namespace.as_deref(), Some(MEDIA_NS));
        assert_eq!(op.child("ProfileToken").unwrap().text, "a<b&c");
        let empty = empty_body(Operation::GetSystemDateAndTime);
        let root = xml::parse(envelope(None, &empty).as_bytes()).unwrap();
        assert_eq!(
            root.find("GetSystemDateAndTime")
                .unwrap()
                .namespace
                .as_deref(),
            Some(DEVICE_NS)
        );
    }
}

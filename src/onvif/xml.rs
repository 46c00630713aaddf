//! Reads SOAP 1.2/1.1 responses of ONVIF cameras (ONVIF Core and Media
//! Service Specs, ver10) with quick-xml into a small namespace-resolved tree,
//! and takes from it what discovery needs: XAddrs, profile tokens, the
//! camera's clock, SOAP Faults.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;

use super::soap::{unix_from_fields, SOAP11_NS, SOAP12_NS};
use super::MEDIA_NS;

/// Deepest nesting accepted; SOAP responses need about ten.
const MAX_DEPTH: usize = 64;
/// Most elements accepted in one document: a GetProfilesResponse with a
/// few dozen full profiles has a few thousand.
const MAX_ELEMENTS: usize = 50_000;

/// One element: its namespace URI and local name (the prefix, which
/// cameras choose freely, is resolved away), attributes, own text and
/// children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    /// Namespace URI, `None` for an unqualified name or an undeclared prefix.
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Attributes as (local name, normalized value); `xmlns` ones left out.
    pub attrs: Vec<(String, String)>,
    /// The element's own text (CDATA included), unescaped, untrimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first attribute with local name `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first descendant (self excluded, depth first) named `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    /// Every descendant named `name`, depth first.
    pub fn find_all(&self, name: &str) -> Vec<&Element> {
        let mut out = Vec::new();
        self.collect(name, &mut out);
        out
    }

    /// Appends every descendant named `name` to `out`.
    fn collect<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.collect(name, out);
        }
    }

    /// True when the element is in namespace `ns`.
    fn is_in(&self, ns: &str) -> bool {
        self.namespace.as_deref() == Some(ns)
    }
}

/// Parses a UTF-8 document into its root element. No DTDs (so no entities
/// beyond the predefined and numeric ones), bounded depth and size.
pub(crate) fn parse(input: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(input).map_err(|_| "not UTF-8".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut elements = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let namespace = match ns {
            ResolveResult::Bound(Namespace(n)) => Some(String::from_utf8_lossy(n).into_owned()),
            ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
        };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err("more than one root element".into());
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("elements nested too deeply".into());
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err("too many elements".into());
                }
                stack.push(element(&reader, namespace, &e)?);
            }
            Event::Empty(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err("too many elements".into());
                }
                let el = element(&reader, namespace, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("end tag without start tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let t = t
                    .xml_content(XmlVersion::Implicit1_0)
                    .map_err(|e| e.to_string())?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(c) => {
                let c = c
                    .xml_content(XmlVersion::Implicit1_0)
                    .map_err(|e| e.to_string())?;
                let top = stack.last_mut().ok_or("CDATA outside the root element")?;
                top.text.push_str(&c);
            }
            Event::GeneralRef(r) => {
                let top = stack
                    .last_mut()
                    .ok_or("reference outside the root element")?;
                match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => top.text.push(c),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        let value = resolve_predefined_entity(&name).ok_or("unknown entity")?;
                        top.text.push_str(value);
                    }
                }
            }
            Event::DocType(_) => return Err("DTDs are not accepted".into()),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

/// The element of a start tag, attributes resolved in its scope.
fn element(
    reader: &NsReader<&[u8]>,
    namespace: Option<String>,
    start: &BytesStart<'_>,
) -> Result<Element, String> {
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let (_, local) = reader.resolver().resolve_attribute(a.key);
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attrs.push((
            String::from_utf8_lossy(local.as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        namespace,
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        attrs,
        ..Element::default()
    })
}

// ---------------------------------------------------------------------------
// What discovery takes from the responses

/// The Media XAddr of a GetCapabilitiesResponse.
pub(crate) fn media_xaddr_from_capabilities(root: &Element) -> Option<&str> {
    root.find("Capabilities")?
        .child("Media")?
        .child("XAddr")
        .map(|x| x.text.trim())
}

/// The XAddr of the ver10 media service in a GetServicesResponse.
pub(crate) fn media_xaddr_from_services(root: &Element) -> Option<&str> {
    root.find_all("Service")
        .into_iter()
        .find(|s| {
            s.child("Namespace")
                .is_some_and(|n| n.text.trim() == MEDIA_NS)
        })?
        .child("XAddr")
        .map(|x| x.text.trim())
}

/// The token of the first profile in a GetProfilesResponse.
pub(crate) fn first_profile_token(root: &Element) -> Option<&str> {
    root.find("Profiles")?
        .attr("token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The code and reason of a SOAP 1.2 or 1.1 Fault (an element `Fault` in
/// either envelope namespace). Codes are joined with `/` from the outermost
/// to the most specific subcode (`env:Sender/ter:NotAuthorized`).
pub(crate) fn fault(root: &Element) -> Option<(String, String)> {
    let fault = root
        .find_all("Fault")
        .into_iter()
        .find(|f| f.is_in(SOAP12_NS) || f.is_in(SOAP11_NS))?;
    let mut codes = Vec::new();
    let mut code = fault.child("Code");
    // Bounded by the document's depth limit.
    while let Some(c) = code {
        if let Some(v) = c.child("Value") {
            codes.push(v.text.trim());
        }
        code = c.child("Subcode");
    }
    if let Some(c) = fault.child("faultcode") {
        codes.push(c.text.trim());
    }
    let reason = fault
        .child("Reason")
        .and_then(|r| r.child("Text"))
        .or_else(|| fault.child("faultstring"))
        .map_or("", |t| t.text.trim());
    let code = if codes.is_empty() {
        "unknown".to_owned()
    } else {
        codes.join("/")
    };
    Some((code, reason.to_owned()))
}

/// The camera's UTC clock in Unix seconds from a
/// GetSystemDateAndTimeResponse.
pub(crate) fn camera_utc(root: &Element) -> Option<i64> {
    let utc = root.find("UTCDateTime")?;
    let text = |parent: &str, name: &str| Some(utc.child(parent)?.child(name)?.text.trim());
    let small = |parent: &str, name: &str| text(parent, name)?.parse::<u8>().ok();
    unix_from_fields(
        text("Date", "Year")?.parse().ok()?,
        small("Date", "Month")?,
        small("Date", "Day")?,
        small("Time", "Hour")?,
        small("Time", "Minute")?,
        small("Time", "Second")?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/onvif_response/");

    /// A seed of the fuzz corpus without its two leading control bytes.
    fn seed(name: &str) -> Element {
        let data = std::fs::read(format!("{DIR}{name}")).unwrap();
        parse(&data[2..]).unwrap()
    }

    #[test]
    fn extracts_from_real_world_shaped_responses() {
        // Hikvision-shaped: `env`/`tds`/`tt` prefixes, other services first.
        let caps = seed("seed-hikvision-capabilities");
        assert_eq!(
            media_xaddr_from_capabilities(&caps),
            Some("http://192.168.1.64/onvif/Media")
        );
        // Axis-shaped: `SOAP-ENV` prefix, a comment, Media2 before Media.
        let services = seed("seed-axis-services");
        assert_eq!(
            media_xaddr_from_services(&services),
            Some("http://10.0.0.5/onvif/services?x=1&y=2")
        );
        assert_eq!(media_xaddr_from_services(&caps), None);
        // Dahua-shaped: default namespaces, single quotes.
        let profiles = seed("seed-dahua-profiles");
        assert_eq!(first_profile_token(&profiles), Some("MediaProfile000"));
        assert_eq!(fault(&profiles), None);
        let date = seed("seed-date-and-time");
        assert_eq!(camera_utc(&date), Some(1_284_623_445));
        let text = std::fs::read_to_string(format!("{DIR}seed-date-and-time")).unwrap();
        let absurd = text[2..].replace(
            "<tt:Year>2010</tt:Year>",
            "<tt:Year>99999999999999999</tt:Year>",
        );
        assert_eq!(camera_utc(&parse(absurd.as_bytes()).unwrap()), None);
    }

    #[test]
    fn reads_soap_12_and_11_faults() {
        let (code, reason) = fault(&seed("seed-fault-soap12")).unwrap();
        assert_eq!(code, "env:Sender/ter:NotAuthorized");
        assert!(reason.starts_with("The action requested requires authorization"));
        let (code, reason) = fault(&seed("seed-fault-soap11")).unwrap();
        assert_eq!(code, "SOAP-ENV:Client");
        assert_eq!(reason, "Method 'SetSynchronizationPoint' not implemented");
        // A `Fault` outside the envelope namespaces is not a SOAP Fault.
        let other = parse(b"<a xmlns:x='urn:x'><x:Fault><faultcode>no</faultcode></x:Fault></a>");
        assert_eq!(fault(&other.unwrap()), None);
    }

    #[test]
    fn names_resolve_through_any_prefix() {
        let doc = br#"<p:a xmlns:p="urn:one" xmlns="urn:two"><b q:x="1" xmlns:q="urn:q"/><p:c/><d xmlns=""/></p:a>"#;
        let root = parse(doc).unwrap();
        assert_eq!(
            (root.name.as_str(), root.namespace.as_deref()),
            ("a", Some("urn:one"))
        );
        let ns = |n: &str| root.child(n).unwrap().namespace.clone();
        assert_eq!(ns("b").as_deref(), Some("urn:two"));
        assert_eq!(ns("c").as_deref(), Some("urn:one"));
        assert_eq!(ns("d"), None);
        let b = root.child("b").unwrap();
        assert_eq!(b.attrs, vec![("x".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn parser_rejects_what_it_cannot_read() {
        let bad: [&[u8]; 11] = [
            b"",
            b"text",
            b"<a>",
            b"<a></b>",
            b"<a></a><b/>",
            b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            b"<a x=1/>",
            b"<a>&bogus;</a>",
            b"<a><![CDATA[x</a>",
            b"<a x=\"1></a>",
            b"<a>\xff</a>",
        ];
        for doc in bad {
            assert!(parse(doc).is_err(), "{:?}", String::from_utf8_lossy(doc));
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err(),
            "elements nested too deeply"
        );
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(many.as_bytes()).unwrap_err(), "too many elements");
        let ok = parse(
            "\u{feff}<?xml version='1.0'?><a b='x>y'>1 &lt; 2 &#x41;&#66;<![CDATA[<c>]]></a>"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.attr("b"), Some("x>y"));
        assert_eq!(ok.text, "1 < 2 AB<c>");
    }
}

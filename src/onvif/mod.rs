//! ONVIF client that makes a camera send a keyframe with the Media service's
//! `SetSynchronizationPoint` (ONVIF Core and Media Service Specs, ver10), for
//! cameras that ignore RTCP PLI/FIR: SOAP 1.2 over HTTP/1.1, authenticated
//! with a WS-Security UsernameToken PasswordDigest (OASIS UsernameToken
//! Profile 1.0) and, when the camera challenges, HTTP Digest (RFC 7616).
//!
//! [`OnvifClient`] drives the exchange; the parts are pure or thin:
//! [`soap`] builds envelopes, [`http`] carries them (hyper), [`digest`]
//! answers HTTP challenges, [`xml`] and [`response`] read the answers.

mod digest;
mod error;
mod http;
mod response;
pub(crate) mod soap;
pub(crate) mod xml;

use std::time::Duration;

use tracing::{debug, info};
use url::Url;

use crate::credentials::Credentials;
use digest::{Challenge, HttpAuth};
pub use error::{OnvifError, Operation};
pub use response::{read_response, Answer};

/// Deadline of one HTTP exchange: connect, send, and read the whole response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body accepted (the head has its own, smaller limit).
pub const MAX_RESPONSE: usize = 1 << 20;

/// Namespace of the ONVIF device service.
pub(crate) const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
/// Namespace of the ONVIF (ver10) media service.
pub(crate) const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";

/// What discovery found; reused by every later keyframe request.
#[derive(Clone, Debug)]
struct Discovered {
    /// Media service URL (origin taken from the device URL).
    media_url: Url,
    /// Profile whose streams get the keyframe.
    profile_token: String,
}

/// Asks one camera for keyframes over ONVIF. Not shared: the camera task
/// that owns the RTSP session owns this too. `Debug` never shows the
/// password ([`Credentials`] hides it).
#[derive(Debug)]
pub struct OnvifClient {
    /// Device service URL, userinfo removed so it can appear in errors.
    device_url: Url,
    /// User name and password for WS-Security and HTTP authentication.
    credentials: Option<Credentials>,
    /// Profile token from the configuration; discovery then skips GetProfiles.
    configured_profile: Option<String>,
    /// Media service and profile once discovery succeeded; forgotten when
    /// SetSynchronizationPoint faults for a reason other than credentials
    /// (the camera may have been reconfigured).
    discovered: Option<Discovered>,
    /// Camera clock minus ours in seconds, from GetSystemDateAndTime, so
    /// `Created` falls in the camera's replay window even if its clock drifts.
    clock_offset_secs: i64,
    /// The camera's HTTP Digest/Basic challenge once it sent one.
    http_auth: HttpAuth,
}

impl OnvifClient {
    /// A client of the device service at `device_url`. Credentials in the
    /// URL's userinfo are used when `credentials` is `None`, and removed from
    /// the URL either way. Nothing is sent before [`Self::request_keyframe`].
    pub fn new(mut device_url: Url, credentials: Option<Credentials>) -> Self {
        let from_url = (!device_url.username().is_empty()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Credentials::new(
                decode(device_url.username()),
                decode(device_url.password().unwrap_or("")),
            )
        });
        // Fails only for URLs that cannot have userinfo, which have none.
        let _ = device_url.set_username("");
        let _ = device_url.set_password(None);
        OnvifClient {
            device_url,
            credentials: credentials.or(from_url),
            configured_profile: None,
            discovered: None,
            clock_offset_secs: 0,
            http_auth: HttpAuth::default(),
        }
    }

    /// Uses `token` instead of the first profile GetProfiles lists.
    pub fn with_profile_token(mut self, token: impl Into<String>) -> Self {
        self.configured_profile = Some(token.into());
        self
    }

    /// The media service URL, once discovered.
    pub fn media_url(&self) -> Option<&Url> {
        self.discovered.as_ref().map(|d| &d.media_url)
    }

    /// The profile token keyframes are requested for, once discovered.
    pub fn profile_token(&self) -> Option<&str> {
        self.discovered.as_ref().map(|d| d.profile_token.as_str())
    }

    /// Asks the camera for a keyframe. The first call discovers the media
    /// service and profile (up to five requests); later calls send only
    /// SetSynchronizationPoint. Errors are not retried here (but for one
    /// answer to an HTTP authentication challenge): the caller decides when
    /// to ask again.
    pub async fn request_keyframe(&mut self) -> Result<(), OnvifError> {
        let discovered = match &self.discovered {
            Some(d) => d.clone(),
            None => {
                let d = self.discover().await?;
                self.discovered = Some(d.clone());
                d
            }
        };
        let body = soap::set_synchronization_point_body(&discovered.profile_token);
        let op = Operation::SetSynchronizationPoint;
        match self.call(op, &discovered.media_url, &body).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, OnvifError::Fault { .. }) && !e.is_auth() {
                    self.discovered = None;
                }
                Err(e)
            }
        }
    }

    /// Finds the media service and the profile token.
    async fn discover(&mut self) -> Result<Discovered, OnvifError> {
        if self.credentials.is_some() {
            self.sync_clock().await?;
        }
        let media_url = self.find_media_service().await?;
        let profile_token = match self.configured_profile.clone() {
            Some(t) => t,
            None => {
                let op = Operation::GetProfiles;
                let answer = self.call(op, &media_url, &soap::empty_body(op)).await?;
                answer.profile_token.ok_or_else(|| OnvifError::Missing {
                    operation: op,
                    target: media_url.to_string(),
                    element: "Profiles token",
                })?
            }
        };
        info!(media = %media_url, profile = %profile_token, "ONVIF: discovered");
        Ok(Discovered {
            media_url,
            profile_token,
        })
    }

    /// Reads the camera's clock (without WS-Security, as ONVIF Core allows)
    /// for `Created`. A camera that does not answer usefully leaves the
    /// offset at zero; only an unreachable camera is an error.
    async fn sync_clock(&mut self) -> Result<(), OnvifError> {
        let op = Operation::GetSystemDateAndTime;
        let now = soap::unix_now();
        let device_url = self.device_url.clone();
        match self
            .send(op, &device_url, &soap::empty_body(op), false)
            .await
        {
            Ok(Answer {
                camera_utc: Some(camera),
                ..
            }) => {
                self.clock_offset_secs = camera.saturating_sub(now);
                if self.clock_offset_secs.abs() > 5 {
                    info!(
                        offset_s = self.clock_offset_secs,
                        "ONVIF: camera clock differs from ours; WS-Security Created follows the camera"
                    );
                }
            }
            Ok(_) => debug!("ONVIF: GetSystemDateAndTime without UTCDateTime"),
            Err(e) if e.ends_discovery() && !e.is_auth() => return Err(e),
            Err(e) => debug!("ONVIF: {e}; keeping our clock"),
        }
        Ok(())
    }

    /// GetCapabilities, then GetServices, then the conventional path.
    async fn find_media_service(&mut self) -> Result<Url, OnvifError> {
        let device = self.device_url.clone();
        for op in [Operation::GetCapabilities, Operation::GetServices] {
            let body = match op {
                Operation::GetCapabilities => soap::get_capabilities_body(),
                _ => soap::get_services_body(),
            };
            match self.call(op, &device, &body).await {
                Ok(answer) => match answer.media_xaddr.and_then(|x| resolve_xaddr(&device, &x)) {
                    Some(url) => return Ok(url),
                    None => debug!("ONVIF: {op} to {device} named no usable media XAddr"),
                },
                Err(e) if e.ends_discovery() => return Err(e),
                Err(e) => debug!("ONVIF: {e}; trying the next way"),
            }
        }
        let mut url = device;
        url.set_path("/onvif/media_service");
        info!(media = %url, "ONVIF: camera named no media service; trying the conventional path");
        Ok(url)
    }

    /// One exchange with WS-Security.
    async fn call(&mut self, op: Operation, url: &Url, body: &str) -> Result<Answer, OnvifError> {
        self.send(op, url, body, true).await
    }

    /// One SOAP exchange; `ws_security` adds the WS-Security header when
    /// there are credentials. A 401 with a Digest or Basic challenge is
    /// answered once (RFC 7616), and the challenge kept for later requests.
    async fn send(
        &mut self,
        op: Operation,
        url: &Url,
        body: &str,
        ws_security: bool,
    ) -> Result<Answer, OnvifError> {
        let uri = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut retried = false;
        loop {
            // A fresh nonce and Created on a retry too: cameras may refuse
            // a replayed UsernameToken.
            let envelope = self.envelope(body, ws_security);
            let authorization = match &self.credentials {
                Some(c) => self.http_auth.authorization(c, uri, envelope.as_bytes()),
                None => None,
            };
            let response = http::post(op, url, &envelope, authorization.as_deref()).await?;
            if response.status == 401 && self.credentials.is_some() {
                let verdict = self
                    .http_auth
                    .on_challenge(&response.challenges, authorization.is_some());
                match verdict {
                    Challenge::Retry if !retried => {
                        debug!(
                            scheme = self.http_auth.scheme(),
                            "ONVIF: {op}: answering the camera's HTTP challenge"
                        );
                        retried = true;
                        continue;
                    }
                    Challenge::Retry | Challenge::Rejected => {
                        let password = self.password();
                        let error = OnvifError::CredentialsRejected {
                            operation: op,
                            target: url.to_string(),
                            scheme: self.http_auth.scheme(),
                            challenge: response::sanitize(
                                &format!("realm {:?}", self.http_auth.realm()),
                                password,
                            ),
                        };
                        self.http_auth.reset();
                        return Err(error);
                    }
                    Challenge::Unusable => {}
                }
            }
            let root = response::interpret(op, url.to_string(), &response, self.password())?;
            return Ok(response::answer(op, &root));
        }
    }

    /// The request envelope, with WS-Security if asked for and possible.
    fn envelope(&self, body: &str, ws_security: bool) -> String {
        let security = match (&self.credentials, ws_security) {
            (Some(c), true) => {
                let nonce: [u8; 16] = rand::random();
                let created =
                    soap::format_utc(soap::unix_now().saturating_add(self.clock_offset_secs));
                Some(soap::security_header(
                    &c.username,
                    c.password.expose(),
                    &nonce,
                    &created,
                ))
            }
            _ => None,
        };
        soap::envelope(security.as_deref(), body)
    }

    /// The password, to mask it in camera text.
    fn password(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.password.expose())
    }
}

/// Uses the path and query of a camera's XAddr with the origin of the
/// device URL. Quirk `xaddr-origin`: cameras behind NAT or port forwarding
/// advertise their internal address; the address the user configured is
/// the one that is reachable.
fn resolve_xaddr(device: &Url, xaddr: &str) -> Option<Url> {
    // Some cameras list several space-separated addresses.
    let first = xaddr.split_whitespace().next()?;
    let mut url = device.join(first).ok()?;
    if url.origin() != device.origin() {
        info!(advertised = %url, device = %device, "ONVIF quirk xaddr-origin: using the device URL's host for the media service");
        let path = url.path().to_owned();
        let query = url.query().map(str::to_owned);
        url = device.clone();
        url.set_path(&path);
        url.set_query(query.as_deref());
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xaddr_takes_the_device_urls_origin() {
        let device = Url::parse("http://203.0.113.5:8080/onvif/device_service").unwrap();
        let media = resolve_xaddr(
            &device,
            "http://192.168.1.64/onvif/Media?a=b http://[fe80::1]/x",
        )
        .unwrap();
        assert_eq!(media.as_str(), "http://203.0.113.5:8080/onvif/Media?a=b");
        let same = resolve_xaddr(&device, "/onvif/media").unwrap();
        assert_eq!(same.as_str(), "http://203.0.113.5:8080/onvif/media");
        assert!(resolve_xaddr(&device, "  ").is_none());
    }

    #[test]
    fn credentials_in_the_url_are_moved_out_of_it() {
        let url = Url::parse("http://admin:p%40ss@192.0.2.10/onvif/device_service").unwrap();
        let client = OnvifClient::new(url, None);
        assert_eq!(
            client.device_url.as_str(),
            "http://192.0.2.10/onvif/device_service"
        );
        assert_eq!(client.credentials, Some(Credentials::new("admin", "p@ss")));
        let debug = format!("{client:?} {client:#?}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("p%40ss"),
            "{debug}"
        );
        // Explicit credentials win over the URL's.
        let url = Url::parse("http://admin:url@192.0.2.10/").unwrap();
        let client = OnvifClient::new(url, Some(Credentials::new("u", "explicit")));
        assert_eq!(client.password(), Some("explicit"));
    }

    #[tokio::test]
    async fn https_is_refused_clearly() {
        let url = Url::parse("https://192.0.2.10/onvif/device_service").unwrap();
        let e = OnvifClient::new(url, None)
            .request_keyframe()
            .await
            .unwrap_err();
        assert!(matches!(e, OnvifError::UnsupportedScheme { .. }), "{e}");
        assert!(e.to_string().contains("https"), "{e}");
    }
}

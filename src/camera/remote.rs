//! Cameras that another gateway of a cluster pulls: the layers that answer
//! clients (the RTSP server, HTTP) ask a [`Locator`] where a camera is
//! played when it is not played here, and send the client there.

use url::Url;

/// The node that owns a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOwner {
    /// Its node id.
    pub node: String,
    /// Its HTTP base URL.
    pub http: Url,
    /// Its RTSP server's base URL, when it serves RTSP.
    pub rtsp: Option<Url>,
}

/// Where cameras not played here are played.
pub trait Locator: Send + Sync + std::fmt::Debug {
    /// The owner of `camera` when it is another node.
    fn remote_owner(&self, camera: &str) -> Option<RemoteOwner>;
}

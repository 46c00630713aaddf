//! The `webrtc` crate's SRTP writer for a peer connection's local streams,
//! taken with an interceptor: the viewer task writes the RTP packets it
//! made (payloads shared by every viewer of the camera) straight to the
//! crate's SRTP session, below the crate's tracks, which are kept for
//! negotiation only.

use std::sync::{Arc, Mutex};

use webrtc::interceptor::stream_info::StreamInfo;
use webrtc::interceptor::{
    Interceptor, InterceptorBuilder, RTCPReader, RTCPWriter, RTPReader, RTPWriter,
};

/// The writer under a peer connection's local streams, once one is bound
/// (every local stream of a peer connection gets the same SRTP session,
/// which tells the streams apart by SSRC).
#[derive(Default)]
pub(super) struct Tap {
    writer: Mutex<Option<Arc<dyn RTPWriter + Send + Sync>>>,
}

impl Tap {
    /// The SRTP writer, once the crate has bound a local stream (when the
    /// peer connection starts its senders).
    pub fn writer(&self) -> Option<Arc<dyn RTPWriter + Send + Sync>> {
        self.writer.lock().ok()?.clone()
    }
}

/// Builds the one [`Tap`] of a peer connection (an API, and so a registry,
/// is made per peer connection).
pub(super) struct TapBuilder(pub Arc<Tap>);

impl InterceptorBuilder for TapBuilder {
    fn build(
        &self,
        _id: &str,
    ) -> Result<Arc<dyn Interceptor + Send + Sync>, webrtc::interceptor::Error> {
        Ok(Arc::new(TapInterceptor(self.0.clone())))
    }
}

struct TapInterceptor(Arc<Tap>);

#[async_trait::async_trait]
impl Interceptor for TapInterceptor {
    async fn bind_rtcp_reader(
        &self,
        reader: Arc<dyn RTCPReader + Send + Sync>,
    ) -> Arc<dyn RTCPReader + Send + Sync> {
        reader
    }

    async fn bind_rtcp_writer(
        &self,
        writer: Arc<dyn RTCPWriter + Send + Sync>,
    ) -> Arc<dyn RTCPWriter + Send + Sync> {
        writer
    }

    async fn bind_local_stream(
        &self,
        _info: &StreamInfo,
        writer: Arc<dyn RTPWriter + Send + Sync>,
    ) -> Arc<dyn RTPWriter + Send + Sync> {
        if let Ok(mut slot) = self.0.writer.lock() {
            slot.get_or_insert_with(|| writer.clone());
        }
        writer
    }

    async fn unbind_local_stream(&self, _info: &StreamInfo) {}

    async fn bind_remote_stream(
        &self,
        _info: &StreamInfo,
        reader: Arc<dyn RTPReader + Send + Sync>,
    ) -> Arc<dyn RTPReader + Send + Sync> {
        reader
    }

    async fn unbind_remote_stream(&self, _info: &StreamInfo) {}

    async fn close(&self) -> Result<(), webrtc::interceptor::Error> {
        if let Ok(mut slot) = self.0.writer.lock() {
            slot.take();
        }
        Ok(())
    }
}

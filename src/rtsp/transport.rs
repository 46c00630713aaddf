//! The RTSP `Transport` header (RFC 2326 section 12.39), tolerant of camera
//! quirks such as `ssrc=` in decimal, with spaces or with a `0x` prefix.

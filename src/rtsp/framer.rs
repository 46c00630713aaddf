//! Splits the bytes of an RTSP/TCP connection into RTSP messages and
//! interleaved `$` frames (RFC 2326 section 10.12).

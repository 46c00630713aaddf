//! Reads arbitrary bytes as an ONVIF camera's answer to a SOAP request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::onvif_response::run(data));

//! Untrusted image bytes: `imaging::decode` with the default limits, then `detect::preprocess`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    faceplate_fuzz::decode_and_preprocess(data);
});

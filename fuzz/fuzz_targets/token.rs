#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ztmesh_fuzz::token(data));

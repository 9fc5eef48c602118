#![no_main]

libfuzzer_sys::fuzz_target!(
    init: apiguard_filter::fuzzing::prepare(),
    |data: &[u8]| apiguard_filter::fuzzing::learn(data)
);

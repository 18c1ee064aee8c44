//! The configuration loader: any text is a configuration or a ConfigError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use movierec_config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_yaml_str(text, "fuzz.yaml", std::iter::empty());
    }
});

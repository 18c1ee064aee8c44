//! The stream's event parser: any bytes from Kafka or the API either become
//! a valid event that survives its own JSON form, or an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use movierec_core::RatingEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = RatingEvent::from_json(data) {
        let again = RatingEvent::from_json(event.to_json().as_bytes())
            .expect("an accepted event's canonical JSON parses");
        assert_eq!(again, event, "the canonical JSON round-trips");
    }
});

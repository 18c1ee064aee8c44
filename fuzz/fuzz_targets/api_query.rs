//! The API's query-string validation, as axum hands it over (URL-decoded
//! pairs): every parameter of the movie list, top-N and k, and path ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use movierec_server::params::{MOVIE_LIST_PARAMS, Params, path_id};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let _ = path_id("id", query);
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return;
    };
    let mut allowed = MOVIE_LIST_PARAMS.to_vec();
    allowed.push("k");
    if let Ok(params) = Params::new(pairs, &allowed) {
        if let Ok(filter) = params.filter() {
            if let (Some(from), Some(to)) = (filter.year_from, filter.year_to) {
                assert!(from <= to, "a swapped year range is rejected");
            }
        }
        if let Ok(page) = params.page() {
            assert!(page.page >= 1 && (1..=100).contains(&page.page_size));
        }
        let _ = params.sort(Default::default());
        if let Ok(Some(k)) = params.int::<u64>("k", 1, 100) {
            assert!((1..=100).contains(&k));
        }
    }
});

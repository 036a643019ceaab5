//! Webhook bodies: the bounty parser never panics, and what it accepts makes
//! sense (both URIs present, bid rules in order, bids within them).

#![no_main]

use libfuzzer_sys::fuzz_target;

use {{crate_name}}::runtime::Bounty;

fuzz_target!(|body: &[u8]| {
    let Ok(bounty) = Bounty::from_json(body) else {
        return;
    };
    assert!(!bounty.artifact_uri.is_empty());
    assert!(!bounty.response_url.is_empty());
    let rules = bounty.rules;
    assert!(rules.min_allowed_bid <= rules.max_allowed_bid);
    for confidence in [0.0, 0.5, 1.0, f64::NAN, -1.0, 2.0] {
        let bid = rules.interpolate(confidence);
        assert!((rules.min_allowed_bid..=rules.max_allowed_bid).contains(&bid));
    }
});

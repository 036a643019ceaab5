//! The bid: how much NCT the engine stakes on each verdict. YOUR FILE.
//!
//! PolySwarm rewards correct assertions and takes the stake of wrong ones, so
//! a good bid reflects how sure the scanner is. Amounts are in wei
//! (1 NCT = 10^18 wei); the runtime clamps whatever this returns to the
//! bounty's rules and sends no bid for `suspicious` and `unknown`.

use crate::runtime::{Analysis, BidRules};

/// The bid for `analysis`, in wei, within `rules`.
///
/// Called only for `malicious` and `benign` verdicts in the assertion phase.
pub fn bid(analysis: &Analysis, rules: &BidRules) -> u128 {
    // CUSTOMIZE_HERE(7): the bid. The default stakes
    // `min + confidence * (max - min)`, computed exactly in wei, and never
    // less than 1 wei (PolySwarm wants a positive bid with an assertion).
    // Stake more where your scanner is strong (say, by malware family in
    // `analysis.metadata`) and less where it guesses.
    rules.interpolate(analysis.confidence).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bounty::NCT;

    #[test]
    fn stakes_more_when_more_confident() {
        let rules = BidRules {
            min_allowed_bid: NCT / 16,
            max_allowed_bid: NCT,
        };
        let sure = bid(&Analysis::malicious("Test", 1.0), &rules);
        let unsure = bid(&Analysis::malicious("Test", 0.25), &rules);
        assert_eq!(sure, NCT);
        assert!(unsure > rules.min_allowed_bid && unsure < sure);
        let free = BidRules {
            min_allowed_bid: 0,
            max_allowed_bid: 10,
        };
        assert_eq!(bid(&Analysis::benign(0.0), &free), 1);
    }
}

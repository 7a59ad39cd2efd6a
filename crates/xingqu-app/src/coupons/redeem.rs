//! Using coupons at checkout: the buyer's best combination (or their explicit choice) in the
//! quote, locking claims and budgets to the order, releasing them, and the ledger's funders.

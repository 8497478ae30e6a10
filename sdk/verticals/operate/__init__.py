"""Operating a delivered model: the feedback store, comparing bundles before a promotion."""

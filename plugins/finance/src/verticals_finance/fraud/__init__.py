"""Transaction fraud: tabular + text features, a fusion head, cost-based decision threshold."""

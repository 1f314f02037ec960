"""ruleengine: a deterministic safety and strategy layer for Indian index-option trading."""

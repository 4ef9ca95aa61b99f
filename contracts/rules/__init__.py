"""Rules ("smart laws"): signed, versioned rules published by authorities (docs/rules.md)."""

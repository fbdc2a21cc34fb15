"""Dynamic pricing: the pure market-balance rule and the quotes that apply it to one GPU."""

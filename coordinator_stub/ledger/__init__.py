"""Money that is conserved: balanced transfers between accounts, and staking on miners."""

"""The ground every coordinator part stands on: the clock and ids, money as exact decimals."""

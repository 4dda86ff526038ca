"""Accounts and their balances, history and point-in-time balances."""

"""Transactions: postings, two-phase (pending -> post/void/expire), reversals."""

"""Mailboxes as Maildirs: crash-safe delivery, stable UIDs, flags, quota (one per address)."""

"""POP3 (RFC 1939) over the same Maildir mailboxes, on twisted.mail.pop3."""

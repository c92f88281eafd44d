"""IMAP4rev1 over the Maildir mailboxes, on twisted.mail.imap4, logins through the portal."""

"""Inbound SMTP for the hosted domains: recipient checks, DNSBL, quota, Maildir delivery."""

"""The mail relay: authenticated submission, the durable outbound queue, delivery and DKIM.

``smtp.server:build(ctx)`` gives the runtime the submission listeners (aiosmtpd protocols on
the shared loop, with ``SubmissionHandler``) and the queue that delivers what they accept.
"""

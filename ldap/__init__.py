"""The LDAP directory apps bind against: ldaptor's protocol, BER and DN parsing in front of
our own indexed, read-only view of the store (``ldap.server:build`` is what the runtime loads).
"""

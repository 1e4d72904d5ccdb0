"""Development fixtures: nothing in the production path imports this package.

`tsa` is a local RFC 3161 time-stamping authority with throwaway certificates, for tests
and the demo; `demo_signing/` holds a TEST-ONLY signing key and certificates.
"""

"""Signed and timestamped evidence packs.

| module | job |
|---|---|
| `settings` | where key, certificate, password, TSA and trust anchors come from; no pyHanko |
| `keys` | load the key and certificate chain; a bad pair is a ConfigError before any work |
| `tsa` | RFC 3161 client: one POST, the answer checked before it is used (SourceError) |
| `sign` | `PackSigner`: PAdES signature + document timestamp on report.pdf, manifest.json.tsr |
| `verify` | what `verify` checks beyond the hashes: PDF signatures, timestamps, the .tsr |

pyHanko costs about a second to import, so only `sign` and `verify` import it, and only the
commands that sign or verify a signed pack import them.
"""

"""`python -m auditkit.archive_sample`, the name the sample data records (its README and
`archive/expected.json`): runs `auditkit.devtools.archive_sample`, where the code lives."""

if __name__ == "__main__":
    import sys

    from auditkit.devtools.archive_sample import main

    sys.exit(main())

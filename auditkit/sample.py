"""`python -m auditkit.sample`, the command the sample data names (its README and config):
runs `auditkit.devtools.sample`, where the generator lives."""

if __name__ == "__main__":
    from auditkit.devtools.sample import main

    raise SystemExit(main())

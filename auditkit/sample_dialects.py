"""`python -m auditkit.sample_dialects`, the command rendered datasets name in their README:
runs `auditkit.devtools.dialects`, where the code lives."""

if __name__ == "__main__":
    from auditkit.devtools.dialects import main

    raise SystemExit(main())

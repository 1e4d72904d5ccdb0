"""Export the store to Apache Iceberg tables that Spark, Trino, Snowflake or DuckDB read.

    settings.py  where the export goes (flags > env > [export] > `--out DIR`), no pyiceberg
    tables.py    which tables, their partition time column and key, the rows as exported
    iceberg.py   the incremental, per-table atomic export (imports pyiceberg when it runs)
    read.py      reading an export back: data files of the current snapshot, DuckDB views

Light on purpose: `config` imports `settings` to validate `[export]`, and the CLI must start
without pyiceberg (an optional extra).
"""

"""Storage: schema, queries, migrations. SQLite by default, PostgreSQL for scale.

Rows never leave this package: repositories return domain objects.
"""

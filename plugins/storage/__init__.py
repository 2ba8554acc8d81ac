"""Storage backends: SQLite is the default; PostgreSQL ships as a contrib plugin."""

"""Read models in PostgreSQL (DESIGN §13): the same folds and queries as SQLite, translated."""

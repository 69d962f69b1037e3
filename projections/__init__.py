"""Read models: SQLite schema, pure event -> row folds, and the typed queries."""

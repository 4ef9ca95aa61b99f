"""PostgreSQL access shared by the components: the schema (one module owns it) and stores."""

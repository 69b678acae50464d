"""Patient records: table, wire schemas, service functions and the HTTP router."""

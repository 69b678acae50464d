#!/usr/bin/env bash
# One database per service that stores data, named in SERVICE_DATABASES (space-separated) by
# docker-compose.yml: the same names the native launcher uses (devstack/src/devstack/services.py).
# The postgres image runs the scripts of /docker-entrypoint-initdb.d once, when its data volume is
# empty (a fresh `docker compose up`, or after `docker compose down -v`); the services then run
# their own migrations in their databases. Safe to run again: existing databases are kept.
set -euo pipefail

for database in ${SERVICE_DATABASES:?SERVICE_DATABASES must name the databases to create}; do
  echo "init-databases: ensuring database ${database}"
  # :'database' is psql's quoting of a variable as a literal; format('%I') quotes the identifier.
  psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-postgres}" --set database="${database}" <<'SQL'
SELECT format('CREATE DATABASE %I', :'database')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')\gexec
SQL
done

#!/usr/bin/env bash
# Runs once, when the official image initialises an empty data directory: one database per
# tier, each with floe installed (the same as scripts/setup.sh does locally).
set -euo pipefail
for db in ${FLOE_DATABASES:-oltp content queue olap}; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$db\""
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" \
        -c "CREATE EXTENSION floe" -c "SELECT floe.version()"
done

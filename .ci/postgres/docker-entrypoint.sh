#!/bin/sh
# The official image's contract, in short: a new data folder is initialised with POSTGRES_USER,
# POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) and POSTGRES_DB, then the scripts in
# /docker-entrypoint-initdb.d run in name order; then the server runs in the foreground.
set -eu

if [ "$(id -u)" = 0 ]; then
    # As root: own the data folder, then drop to postgres for good.
    mkdir -p "$PGDATA"
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-postgres}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
    fi
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres: no POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE; refusing an open database" >&2
        exit 1
    fi
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # A temporary server on the socket only, for the database and the init scripts.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q \
            -c "CREATE DATABASE \"$db\"" >/dev/null
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sql) echo "postgres: running $script" >&2
                   psql -v ON_ERROR_STOP=1 --username="$user" --dbname="$db" -q -f "$script" ;;
            *.sh)  echo "postgres: running $script" >&2; . "$script" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres: initialised $PGDATA" >&2
fi

if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -c listen_addresses="${POSTGRES_LISTEN:-*}" "$@"
fi
exec "$@"

"""What names say: the images, programs, folders and words that mark a service's role.

The vocabularies `evidence` reads a service against: official (and widely used vendor) images
of databases, caches, brokers, proxies, model servers and tools; the programs they run; where
databases keep their data; runtimes that are not Python; the words of worker and job scripts.
They name kinds of software, never a project or a service.
"""

from __future__ import annotations

import re

# Official (and widely used vendor) images of what sits beside an app, by repository name.
COMPANIONS = {
    # databases and search engines
    "postgres", "postgresql", "postgis", "timescaledb", "mysql", "mariadb", "mongo", "mongodb",
    "cassandra", "couchdb", "elasticsearch", "opensearch", "clickhouse-server", "clickhouse",
    "influxdb", "neo4j", "cockroach", "minio", "qdrant", "weaviate", "chroma", "milvus",
    "meilisearch", "typesense", "solr", "manticore", "pgvector", "pgbouncer", "etcd",
    # caches
    "redis", "redis-stack", "valkey", "keydb", "memcached", "dragonfly",
    # brokers
    "rabbitmq", "kafka", "cp-kafka", "zookeeper", "cp-zookeeper", "nats", "eclipse-mosquitto",
    "activemq", "artemis", "pulsar",
    # proxies
    "nginx", "traefik", "caddy", "haproxy", "envoy", "httpd", "varnish", "openresty",
    # model servers
    "ollama", "text-generation-inference", "tritonserver", "vllm-openai", "tei",
    "text-embeddings-inference", "localai",
    # tools beside a backend: mail catchers, admin and monitoring UIs, document converters
    "mailhog", "mailpit", "maildev", "smtp4dev", "adminer", "pgadmin4", "localstack", "certbot",
    "jaeger", "prometheus", "grafana", "otel-collector", "opentelemetry-collector", "kibana",
    "tika", "gotenberg", "mongo-express", "redisinsight", "portainer", "dozzle", "loki",
}  # fmt: skip
# The programs companions run, when a local build hides which image they are.
COMPANION_PROGRAMS = {
    "postgres", "redis-server", "valkey-server", "mysqld", "mariadbd", "mongod", "memcached",
    "rabbitmq-server", "nginx", "traefik", "caddy", "haproxy", "envoy", "httpd", "minio",
    "ollama",
}  # fmt: skip
# Programs that are not Python: a command that ends by running one runs no Python app.
NOT_PYTHON_PROGRAMS = {
    "node", "npm", "npx", "yarn", "pnpm", "bun", "deno", "java", "ruby", "php", "go", "dotnet",
    "vite", "next", "nuxt", "ng", "webpack", "webpack-dev-server", "parcel", "astro", "hugo",
    "jekyll",
}  # fmt: skip
# Servers of something other than the app: documentation, static files, notebooks.
OTHER_SERVERS = {"mkdocs", "http.server", "sphinx-autobuild", "jupyter", "jupyter-lab", "pelican"}
# Where a database built from a distribution image keeps its data: shipping one is being one.
DATA_DIRS = {
    "/var/lib/postgresql": "postgres", "/var/lib/postgresql/data": "postgres",
    "/var/lib/mysql": "mysqld", "/data/db": "mongod", "/var/lib/rabbitmq": "rabbitmq",
}  # fmt: skip
# Packages a distribution image installs to become a database.
# A package's whole name: `postgresql-client` and `--postgresql-version` are not the server.
DB_PACKAGES = re.compile(
    r"(?<![\w.-])(postgresql(-\d+)?|postgresql-server|mysql-server|mariadb-server|mongodb-org|"
    r"redis-server)(?![\w.-])"
)
# The default ports of databases: a service listening there and named by its image's variables
# (`POSTGRES_PASSWORD` with 5432) is that database.
DB_PORTS = {"5432": "postgres", "3306": "mysql", "27017": "mongo", "6379": "redis"}
DB_VARIABLES = {
    "postgres": ("POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_HOST_AUTH_METHOD"),
    "mysql": ("MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "MARIADB_ROOT_PASSWORD"),
    "mongo": ("MONGO_INITDB_ROOT_PASSWORD",),
    "redis": ("REDIS_PASSWORD",),
}
URL_SCHEMES = {
    "postgres": "postgres", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql",
    "mongodb": "mongo", "redis": "redis", "rediss": "redis", "amqp": "rabbitmq",
}  # fmt: skip
# Runtimes that are not Python: a service built from one is not the Python app.
NOT_PYTHON = {
    "node", "bun", "deno", "golang", "rust", "ruby", "php", "openjdk", "eclipse-temurin",
    "amazoncorretto", "dotnet", "sdk", "aspnet", "nginx", "httpd", "caddy", "playwright",
    "cypress", "selenium", "standalone-chrome", "puppeteer",
}  # fmt: skip
# Public base images: services that run one of these do not share "the app's image".
BASES = {
    "python", "pypy", "debian", "ubuntu", "alpine", "busybox", "fedora", "centos", "rockylinux",
    "almalinux", "amazonlinux", "node", "golang", "rust", "ruby", "php", "openjdk",
}  # fmt: skip
DISTRIBUTIONS = {"debian", "ubuntu", "alpine", "fedora", "centos", "rockylinux", "almalinux"}
# Words in a command (a script's name, an entrypoint's subcommand) that say what it starts.
WORKER_WORDS = {"worker", "workers", "beat", "scheduler", "celery", "consumer", "cron", "rqworker"}
MONITOR_WORDS = {"flower"}
JOB_WORDS = {
    "migrate", "migrator", "migration", "migrations", "init", "seed", "setup", "upgrade", "test",
    "tests",
}  # fmt: skip
# Variables only a Python process reads.
PYTHON_VARIABLES = re.compile(r"^(DJANGO_SETTINGS_MODULE|PYTHON[A-Z_]*|FLASK_APP|UVICORN_\w+)$")
PYTHON_VALUES = re.compile(r"\b(django|flask|celery)\.[a-z_.]+|\b\w+\.(wsgi|asgi):\w+")


def repository(image: str) -> str:
    """The last path part of an image reference, without tag or digest: `postgres`, `kafka`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def known_companion(image: str | None) -> bool:
    if not image:
        return False
    name = repository(image)
    prefixes = ("postgres", "redis", "rabbitmq", "mysql", "mongo")
    return name in COMPANIONS or name.startswith(prefixes) or "/mssql/" in image

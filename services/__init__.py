"""Local services the gateway and its tests start themselves: a real Apache Kafka (KRaft, 1 or
3 nodes, jars resolved by Maven), and throw-away Redis and PostgreSQL servers from Debian's
packages, and an S3-compatible server (versitygw, built once from its Go module).

- `kafka.KafkaCluster`: nodes on free ports, topics, and process faults (pause, kill, restart);
- `redis.RedisServer`, `postgres.PostgresServer`, `s3.S3Server`: own directory and port,
  stopped on exit;
- `_process`: one child process, its log, readiness and a stop that leaves nothing behind;
- `testing`: the pytest fixtures built on them; `errors`: the error tree.
"""

from services.errors import ServiceError, ServiceNotInstalled, ServiceNotRunning, ServiceStartFailed
from services.kafka import KAFKA_VERSION, KafkaCluster, java_available, kafka_classpath
from services.postgres import PostgresServer
from services.redis import RedisServer
from services.s3 import VERSITYGW_VERSION, S3Server, versitygw_binary

__all__ = [
    "KAFKA_VERSION",
    "VERSITYGW_VERSION",
    "KafkaCluster",
    "PostgresServer",
    "RedisServer",
    "S3Server",
    "ServiceError",
    "ServiceNotInstalled",
    "ServiceNotRunning",
    "ServiceStartFailed",
    "java_available",
    "kafka_classpath",
    "versitygw_binary",
]

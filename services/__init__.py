"""Local services the gateway and its tests start themselves: a real Apache Kafka (KRaft, 1 or
3 nodes, jars resolved by Maven), and throw-away Redis and PostgreSQL servers from Debian's
packages.

- `kafka.KafkaCluster`: nodes on free ports, topics, and process faults (pause, kill, restart);
- `redis.RedisServer`, `postgres.PostgresServer`: own directory and port, stopped on exit;
- `_process`: one child process, its log, readiness and a stop that leaves nothing behind;
- `testing`: the pytest fixtures built on them; `errors`: the error tree.
"""

from services.errors import ServiceError, ServiceNotInstalled, ServiceNotRunning, ServiceStartFailed
from services.kafka import KAFKA_VERSION, KafkaCluster, java_available, kafka_classpath
from services.postgres import PostgresServer
from services.redis import RedisServer

__all__ = [
    "KAFKA_VERSION",
    "KafkaCluster",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "ServiceNotInstalled",
    "ServiceNotRunning",
    "ServiceStartFailed",
    "java_available",
    "kafka_classpath",
]

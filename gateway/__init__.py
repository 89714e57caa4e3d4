"""The composition root: the `gateway` command, which starts the product's pieces together.

Why a package of its own: the proxy, the consumers, the emulators and the local servers know
nothing of each other; only this package imports them all, builds one settings object per
command and hands each piece what it needs.

- `settings`: `StackSettings`, built once from litellm_config.yaml, the environment and the
  command line (the only place that reads the environment);
- `broker`: which Kafka broker a command uses, and the local one it may start;
- `components`: the start()/stop() pieces (emulators, proxy) and the runner that stops them in
  reverse order; `pipeline`: the Kafka broker and consumer components; `workers`: the proxy
  as N supervised processes on one port (`up --workers N`), each running `worker`;
- `stack`: what `up`, `consume` and `kafka` run; `send`, `send_cli`, `send_fields`:
  `gateway send` of any kind; `kinds`: the kinds the configured handlers serve;
  `schema_cli`: `gateway schema`, the published JSON Schema of every kind;
- `cli`: the argument parser and `main`.
"""

from gateway.broker import BrokerChoice, BrokerMode, LocalBroker, choose_broker
from gateway.cli import main
from gateway.settings import Flags, StackSettings, build_stack_settings

__all__ = [
    "BrokerChoice",
    "BrokerMode",
    "Flags",
    "LocalBroker",
    "StackSettings",
    "build_stack_settings",
    "choose_broker",
    "main",
]

"""A replica's identity, as zeppelin hands it over in the environment (docs/spec.md)."""
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass(frozen=True)
class Replica:
    system: str
    service: str
    index: int                     # ZEPPELIN_REPLICA: the ordinal, 0-based
    replicas: int                  # ZEPPELIN_REPLICAS
    host: str                      # ZEPPELIN_HOST: the address to listen on
    port: Optional[int]            # PORT: the first declared port
    ports: Dict[str, int] = field(default_factory=dict)        # PORT_<NAME>, names lower-cased
    peers: List[str] = field(default_factory=list)             # ZEPPELIN_PEERS: host:port of every replica
    volumes: Dict[str, str] = field(default_factory=dict)      # ZEPPELIN_VOLUME_<NAME>
    dependencies: Dict[str, str] = field(default_factory=dict)  # ZEPPELIN_SERVICE_<DEP>
    etcd_endpoints: List[str] = field(default_factory=list)    # ZEPPELIN_ETCD_ENDPOINTS


def _required(env, name):
    value = env.get(name)
    if value is None:
        raise RuntimeError(f"{name} is not set: not running as a zeppelin replica")
    return value


def _suffixed(env, prefix):
    return {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix) and len(k) > len(prefix)}


def replica(env=None):
    """This process's identity; raises RuntimeError outside a zeppelin replica."""
    env = os.environ if env is None else env
    ports = {name: int(value) for name, value in _suffixed(env, "PORT_").items() if value.isdigit()}
    return Replica(
        system=_required(env, "ZEPPELIN_SYSTEM"),
        service=_required(env, "ZEPPELIN_SERVICE"),
        index=int(_required(env, "ZEPPELIN_REPLICA")),
        replicas=int(_required(env, "ZEPPELIN_REPLICAS")),
        host=_required(env, "ZEPPELIN_HOST"),
        port=int(env["PORT"]) if env.get("PORT", "").isdigit() else None,
        ports=ports,
        peers=[p for p in env.get("ZEPPELIN_PEERS", "").split(",") if p],
        volumes=_suffixed(env, "ZEPPELIN_VOLUME_"),
        dependencies=_suffixed(env, "ZEPPELIN_SERVICE_"),
        etcd_endpoints=[e for e in env.get("ZEPPELIN_ETCD_ENDPOINTS", "").split(",") if e],
    )

"""The gRPC server: servicer, interceptor, callers, status mapping and the process bootstrap.

Owns the gateway's face to its callers: translating graphcomms.v1 messages to the domain and
back (servicer), admission, authentication, limits and accounting (interceptor, callers), the
one table from errors to gRPC statuses (`_status`) and the `Gateway` that builds every part
from Settings (`_configs` derives each part's own small configuration from them, the only place
that does). May import every other part of the gateway except the CLI and the emulator.
"""

from commsgw.server._callers import hash_token
from commsgw.server._configs import PartConfigs, part_configs
from commsgw.server._gateway import Gateway, serve, until_stopped

__all__ = ["Gateway", "PartConfigs", "hash_token", "part_configs", "serve", "until_stopped"]

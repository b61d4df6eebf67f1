"""What the tests share that is not a fixture (the fixtures are in conftest.py).

Each module holds one kind of thing: `polling` (eventually), `certs` (every key and certificate
the tests make), `emulator` (acting on the Graph emulator), `gateway` (a gateway's settings,
in-process or as a process), `notifications` (notification bodies and the signed poster),
`watch` (reading WatchOperations streams), `status` (google.rpc details of an error),
`callers` (the callers file and its tokens), `log_items` (what an event log stores, made
directly), `metrics`, `ids`, `private_redis` and `logscan` (the secret scan of the run's logs).
"""

"""Names vulture cannot see being used, for `make lint` (never imported or run).

    vulture navigator plugins contrib/navigator-plugin-postgres/navigator_plugin_postgres \
        scripts/vulture_whitelist.py --min-confidence 60

Vulture matches by name, so each entry keeps every definition of that name alive:
add a name only with a one-line reason. Generic rules live in ``[tool.vulture]``
(pyproject.toml): generated protobuf modules are excluded, and functions decorated
with pydantic validators are ignored (pydantic calls them).

``# TODO dead:`` marks code that is dead but lives in a file its owner is still
editing; remove the code and the entry together.
"""

# ruff: noqa: B018, F821

# -- Python and library protocols: called by the interpreter or a framework --------------------------

exc_type  # __exit__/__aexit__ parameter (Edge, KubeSim)
frame  # signal handler parameter (cli/demo.py, kubesim/cli.py)
request_iterator  # gRPC servicer method parameter (SyncServicer.Connect)
model_config  # pydantic model configuration (config, plugin_options, postgres options)
_.width  # rich Console.width property setter: piped tables keep whole values (cli/output.py)
_.__test__  # read by pytest: TestManager is not a test class (testing/manager.py)
__getattr__  # module __getattr__ (PEP 562): navigator.kubesim loads its public names on first use

# kubesim/server.py: socketserver/http.server read these class attributes and call these overrides
_.daemon_threads
_.block_on_close
_.request_queue_size
_.allow_reuse_address
_.get_request
_.handle_error
_.server_version
_.sys_version
_.disable_nagle_algorithm
_.log_message
_.do_HEAD  # BaseHTTPRequestHandler dispatches on "do_" + method
_.do_POST
_.do_PUT
_.do_PATCH
_.do_DELETE

# kubesim/churn.py: Churner.step calls the operations named in OPS with getattr
_.readiness
_.scale_down

# -- public API that nothing in these packages calls --------------------------------------------------

_.generated  # KubeSim.generated: what the simulator built, for tests; read by benchmarks/kubesim_list.py

# navigator.testing: the kit for plugin authors' tests (docs/writing-a-plugin.md), used by tests/ and contrib tests
run_test_edge
run_test_manager
_.edge_settings  # TestManager.edge_settings: shown in the testing/manager.py module example
_.query_client
_.wait_for_status
_.server_cert  # Pki fields, read by tests/plugins/transports
_.server_key
_.stop_all  # testing/processes.py Fleet, used by tests/e2e
_.cut  # testing/proxy.py TcpProxy: a network blip on cue, used by tests/e2e and benchmarks
_.restore
_.down  # testing/proxy.py Traffic counters, read by benchmarks/resume.py
run_scenario  # testing/chaos.py: the chaos rounds, run by tests/e2e/test_chaos.py and benchmarks/chaos.py
_.connections
chunked  # testing/raw_edge.py helpers, used by tests/manager and benchmarks
full_state
delta_state
RawEdges
_.send_state
_.claimed
StorageConformance  # the storage conformance suite every backend's tests subclass

# navigator_plugin_postgres.testing: helpers for the postgres plugin's own tests (contrib/.../tests/conftest.py)
OPT_OUT_ENV
postgres_dsn
fresh_schema
drop_schema  # benchmarks drop the schema they ran in (manager_ingest, edge_full_sync, history, selector_query)

# StreamStats fields: diagnostics in the repr that Edge.wait_until's timeout error prints; tests read them
_.last_reject
_.last_error
_.last_applied_sequence

# grpc.aio.ServerInterceptor: gRPC calls it for every call (transports/grpc/server.py TolerantDecoding)
_.intercept_service

# testing/chaos.py: a generated scenario's docstring, for help() and the reader (nothing in the tree reads __doc__)
_.__doc__

# -- dead code whose removal touches files owned by others at the time of writing ---------------------

_._reported  # TODO dead: Fleet._reported (demo/fleet.py) is assigned, never read
_.single_name  # TODO dead: FieldSelector.single_name (kubesim/selectors.py) has no caller

# navigator/web: FastAPI calls the decorated routes and reads the response models' fields for the
# OpenAPI document; uvicorn calls Server.capture_signals and reads should_exit; Manager.http_url is
# read by the demo and the tests
healthz
readyz
events
capture_signals
_.should_exit
_.http_url
address_type
slice
pod_phase
pod_ready
ready_endpoints
serving_endpoints
terminating_endpoints
total_endpoints
endpointslices
pods_truncated
# navigator.testing.raw_edge: builders for tests (ours and third parties')
endpointslice

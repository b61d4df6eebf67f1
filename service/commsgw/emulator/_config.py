"""The settings of one emulator instance."""

from __future__ import annotations

import pathlib
import tempfile
from dataclasses import dataclass, field

from commsgw.emulator._parties import CALLEE_RESPONSES, CallerModel

DEFAULT_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_CLIENT_ID = "00000000-0000-0000-0000-0000000000bb"
# The Graph application permissions (roles) of the emulator's app tokens: every calls permission,
# so that `commsgw doctor` passes against it; a test gives fewer to see what fails.
APP_ROLES = (
    "Calls.AccessMedia.All",
    "Calls.Initiate.All",
    "Calls.InitiateGroupCall.All",
    "Calls.JoinGroupCall.All",
    "Calls.JoinGroupCallAsGuest.All",
)


def _default_state_dir() -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(prefix="commsgw-emulator-"))


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulator instance (all optional)."""

    host: str = "127.0.0.1"
    port: int = 8443  # 0 = pick a free port
    state_dir: pathlib.Path = field(default_factory=_default_state_dir)
    tenant_id: str = DEFAULT_TENANT_ID  # default tenant; any tenant GUID is accepted in paths
    client_id: str = DEFAULT_CLIENT_ID  # the one app registration it knows
    client_secret: str = "emulator-secret"
    media_op_seconds: float = 1.0  # simulated duration of each playPrompt / recordResponse
    notification_delay: float = 0.0  # sleep before each callback POST
    token_lifetime_s: int = 3600
    app_roles: tuple[str, ...] = APP_ROLES  # the roles claim of its app tokens
    # --- extras (not needed for the basic flow) ---
    # PEM certificates registered for the app: when non-empty, client assertions must be signed
    # by one of them (matched by x5t / x5t#S256); when empty, see check_client_assertion.
    client_certificates: tuple[str, ...] = ()
    notification_retries: int = 3  # retries after the first failed callback POST
    notification_retry_backoff_s: float = 0.05  # doubled after each failed attempt
    batch_notifications: bool = False  # put all pending notifications of a call in one POST
    notify_operation_running: bool = False  # send "updated"/running when a queued op starts
    callback_verify: bool | str = True  # httpx `verify` for https callbacks (bool or CA path)
    # --- the calls' far end (seconds; 0 = at once, in the request that caused it) ---
    # each signalling step: establishing -> ringing / established, and the steps of a transfer,
    # a redirect and an invitation
    establish_delay_s: float = 0.0
    ring_s: float = 1.0  # how long a callee's phone rings before it answers (or declines)
    ring_timeout_s: float = 60.0  # how long Graph lets a callee that does not answer ring
    answer_window_s: float = 15.0  # an incoming call not answered/rejected/redirected: dropped
    keepalive_expiry_s: float = 2700.0  # a call without keepAlive for this long is ended
    callee_response: str = "answer"  # what callees do unless set_callee says: answer | decline
    # | busy | noAnswer
    # The caller model of every call unless set_caller gives one. None: recordings do not
    # follow a caller, they last media_op_seconds and end "max record duration reached".
    caller: CallerModel | None = None
    notify_terminating: bool = False  # send "updated"/terminating before a hang-up's terminated

    def __post_init__(self) -> None:
        if self.callee_response not in CALLEE_RESPONSES:
            raise ValueError(f"callee_response must be one of {', '.join(CALLEE_RESPONSES)}")

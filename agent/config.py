"""Agent settings: defaults < TOML file < `AITBC_AGENT_<SECTION>__<KEY>` environment variables.

Every key is validated and an unknown one is an error naming it (`unknown key 'gpu.bakend'`),
so a typo never silently falls back to a default. `load_settings(path)` is the one entry point;
it raises `ConfigError` (exit 78) with every problem found.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agent.config_messages import describe, unknown_env_keys
from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/aitbc-agent/agent.toml")
ENV_PREFIX = "AITBC_AGENT_"
CREDENTIAL_NAME = "api-key"  # systemd LoadCredential= name
DEFAULT_IGNORED_XIDS = (13, 31, 43, 45, 68, 109)
NO_API_KEY = (
    "no coordinator API key: set [coordinator] api_key_file (a file holding the key), "
    "or api_key (or the environment variable AITBC_AGENT_COORDINATOR__API_KEY), "
    f"or pass the systemd credential {CREDENTIAL_NAME!r} (LoadCredential={CREDENTIAL_NAME}:PATH)"
)


def _to_price(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError('a price is a decimal string such as "0.50"')  # noqa: TRY004
    if isinstance(value, float):
        value = repr(value)  # TOML floats: go through the shortest decimal text, not binary
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not price.is_finite() or price <= 0:
        raise ValueError("a price must be a finite number > 0")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        raise ValueError("a price has at most 8 fractional digits")
    return price


Price = Annotated[Decimal, BeforeValidator(_to_price)]


def _to_gpu_ref(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("must be a GPU uuid or an NVML index >= 0")


GpuRef = Annotated[int | str, BeforeValidator(_to_gpu_ref)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CoordinatorSettings(_Section):
    """`[coordinator]`: where the coordinator is and how the agent authenticates."""

    url: str | list[str] = Field(
        default="http://127.0.0.1:8000",
        description="The coordinator's base URL (http or https), or a list of them: the agent "
        "uses the first, fails over to the next on connection errors and 5xx answers, and "
        "tries the first again a minute later.",
    )
    api_key_file: Path | None = Field(
        default=None,
        description="A file holding the miner API key (readable by the agent only). Without it "
        "and without `api_key`, the systemd credential `api-key` is used.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The miner API key inline; prefer `api_key_file` or the credential.",
    )
    miner_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The subject the key is bound to (sent as X-Miner-ID); unset: the key's own.",
    )
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Timeout of one request to the coordinator (a long poll adds its wait).",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else list(value)
        if not urls:
            raise ValueError("needs at least one URL")
        checked = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
            checked.append(url.rstrip("/"))
        if len(set(checked)) != len(checked):
            raise ValueError("lists a URL twice")
        return checked[0] if isinstance(value, str) else checked

    @property
    def urls(self) -> list[str]:
        """Every coordinator URL, the preferred first."""
        return [self.url] if isinstance(self.url, str) else list(self.url)

    def resolve_api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The API key: `api_key`, else `api_key_file`, else the systemd credential `api-key`.

        Returns None when none is configured. Raises `ConfigError` when a configured file
        cannot be read or is empty.
        """
        env = os.environ if environ is None else environ
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        candidates: list[tuple[str, Path]] = []
        if self.api_key_file is not None:
            candidates.append(("coordinator.api_key_file", self.api_key_file))
        elif env.get("CREDENTIALS_DIRECTORY"):
            path = Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME
            if path.exists():
                candidates.append((f"credential {CREDENTIAL_NAME!r}", path))
        for where, path in candidates:
            try:
                key = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {where} {str(path)!r}: {exc.strerror}") from exc
            if not key:
                raise ConfigError(f"{where} {str(path)!r} is empty")
            return key
        return None

    def require_api_key(self, environ: Mapping[str, str] | None = None) -> str:
        """`resolve_api_key()`, but no key at all is a `ConfigError` naming the three ways."""
        key = self.resolve_api_key(environ)
        if key is None:
            raise ConfigError(NO_API_KEY)
        return key


class AgentSection(_Section):
    """`[agent]`: local state and cadence."""

    state_dir: Path = Field(
        default=Path("/var/lib/aitbc-agent"),
        description="Where the state file (leases, ids) and status.json live.",
    )
    heartbeat_interval_s: float = Field(
        default=10.0,
        ge=0.5,
        le=3600,
        description="Seconds between heartbeats; the agent uses min(this, the coordinator's).",
    )
    region: str | None = Field(
        default=None, min_length=1, max_length=64, description="Region shown to renters."
    )


class SimulatedFaultSettings(_Section):
    """One scheduled fault of a simulated GPU (see `agent.gpu.simulated.SimulatedFault`)."""

    kind: Literal["lost", "xid", "ecc", "driver_unresponsive", "throttle"] = Field(
        description="What goes wrong."
    )
    at_sample: int = Field(ge=1, description="The sample (1 = the first) it starts at.")
    unit: int = Field(default=0, ge=0, description="Which GPU of the entry (0-based).")
    duration_samples: int = Field(default=1, ge=1, description="How many samples it lasts.")
    xid: int = Field(default=79, ge=0, description='The Xid code, for kind = "xid".')


class SimulatedMigSettings(_Section):
    """One `[[gpu.simulated.mig]]` instance: each GPU of its entry gets one, MIG mode on."""

    profile: str = Field(
        min_length=1, max_length=32, description='The MIG profile, e.g. "1g.10gb".'
    )
    memory_mib: int = Field(gt=0, le=16 * 1024 * 1024, description="The instance's memory.")


class SimulatedGpuSettings(_Section):
    """One `[[gpu.simulated]]` entry: `count` identical fake GPUs."""

    model: str = Field(
        min_length=1, max_length=128, description='The model name, e.g. "NVIDIA H100 80GB HBM3".'
    )
    memory_mib: int = Field(gt=0, le=16 * 1024 * 1024, description="Memory of each GPU.")
    count: int = Field(default=1, ge=1, le=1024, description="How many such GPUs.")
    compute_capability: str = Field(
        default="9.0", pattern=r"^\d{1,2}\.\d{1,2}$", description="CUDA compute capability."
    )
    power_limit_w: float = Field(default=700.0, gt=0, le=10_000, description="Power limit.")
    utilization_pct: list[Annotated[int, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Utilisation the samples cycle through.",
    )
    faults: list[SimulatedFaultSettings] = Field(
        default_factory=list, description="Scheduled faults (`[[gpu.simulated.faults]]`)."
    )
    mig: list[SimulatedMigSettings] = Field(
        default_factory=list,
        max_length=7,
        description="MIG instances of each GPU (`[[gpu.simulated.mig]]`; MIG mode on).",
    )

    @model_validator(mode="after")
    def _faults_within_count(self) -> SimulatedGpuSettings:
        for i, fault in enumerate(self.faults):
            if fault.unit >= self.count:
                raise ValueError(f"faults[{i}].unit {fault.unit} is not below count {self.count}")
        return self


class GpuSettings(_Section):
    """`[gpu]`: which backend, list prices, exclusions, simulated GPUs."""

    backend: Literal["nvml", "simulated"] = Field(
        default="nvml",
        description='"nvml": the real GPUs; "simulated": the `[[gpu.simulated]]` ones (never '
        "chosen silently).",
    )
    price_per_hour: Price = Field(
        default=Decimal("0.50"),
        description="Default list price in AITBC per hour, a decimal string.",
    )
    prices: dict[Annotated[str, Field(min_length=1, max_length=128)], Price] = Field(
        default_factory=dict,
        description='List price per exact model name (`"<model> MIG <profile>"` for MIG).',
    )
    exclude: list[GpuRef] = Field(
        default_factory=list, description="GPU uuids (MIG ones too) or NVML indexes never offered."
    )
    simulated: list[SimulatedGpuSettings] = Field(
        default_factory=list, description='The fake GPUs of backend = "simulated".'
    )

    @model_validator(mode="after")
    def _simulated_needs_gpus(self) -> GpuSettings:
        if self.backend == "simulated" and not self.simulated:
            raise ValueError('backend = "simulated" needs at least one [[gpu.simulated]] entry')
        return self

    def price_for(self, model: str | None) -> Decimal:
        """The list price of a GPU model: `[gpu.prices]` exact name, else `price_per_hour`."""
        if model is not None and model in self.prices:
            return self.prices[model]
        return self.price_per_hour


class LeasesSettings(_Section):
    """`[leases]`: operator hooks run when a lease starts or ends."""

    on_start: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="argv run when a lease starts (AITBC_LEASE_ID, AITBC_GPU_UUID, ... in its "
        "environment); empty: nothing is run.",
    )
    on_end: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="argv run when a lease ends (released or expired)."
    )
    hook_timeout_s: float = Field(
        default=60.0, gt=0, le=86_400, description="A hook still running after this is killed."
    )


class HealthSettings(_Section):
    """`[health]`: Xids to ignore and how many good samples bring a GPU back."""

    ignore_xids: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: list(DEFAULT_IGNORED_XIDS),
        description="Xid codes that do not make a GPU unhealthy (application errors).",
    )
    recover_after_ok_samples: int = Field(
        default=3,
        ge=1,
        le=10_000,
        description="Good samples in a row that bring an unhealthy GPU back.",
    )


class MetricsSettings(_Section):
    """`[metrics]`: the optional Prometheus endpoint (`""` = off)."""

    listen: str = Field(
        default="", description='Prometheus endpoint "host:port" (e.g. "127.0.0.1:9400"); "" = off.'
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be "host:port", e.g. "127.0.0.1:9400", or ""')
        return value

    @property
    def host_port(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when disabled."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class AttestSettings(_Section):
    """`[attest]`: the proof-of-hardware self-test (docs/attestation.md)."""

    enabled: bool = Field(
        default=True,
        description="Attest the GPUs to the coordinator: after registering, every "
        "`interval_h`, and when the coordinator asks (never a leased GPU, never simulated "
        "ones).",
    )
    interval_h: float = Field(
        default=24.0, gt=0, le=24 * 365, description="Hours between two attestations of a GPU."
    )
    fill_fraction: float = Field(
        default=0.9,
        gt=0.05,
        le=0.98,
        description="Share of the memory NVML claims that the self-test fills and checks.",
    )
    cuda_library: str = Field(
        default="libcuda.so.1",
        description="The CUDA driver library (a name the loader finds, or a path).",
    )


class AgentSettings(BaseSettings):
    """The whole agent configuration (docs/configuration.md is rendered from these fields)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    coordinator: CoordinatorSettings = Field(
        default_factory=CoordinatorSettings,
        description="Where the coordinator is and how the agent authenticates.",
    )
    agent: AgentSection = Field(
        default_factory=AgentSection, description="Local state and cadence."
    )
    gpu: GpuSettings = Field(
        default_factory=GpuSettings,
        description="Which backend, list prices, exclusions, simulated GPUs.",
    )
    leases: LeasesSettings = Field(
        default_factory=LeasesSettings,
        description="Operator hooks run when a lease starts or ends.",
    )
    health: HealthSettings = Field(
        default_factory=HealthSettings, description="Xids to ignore and how a GPU recovers."
    )
    attest: AttestSettings = Field(
        default_factory=AttestSettings,
        description="Proof of hardware: the CUDA self-test of `aitbc-agent attest`.",
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="The optional Prometheus endpoint."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; env must win over it, so env comes first.
        return env_settings, init_settings


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML config file; `ConfigError` when missing, unreadable or malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc


def load_settings(path: Path | str | None = None) -> AgentSettings:
    """Load settings from defaults, the TOML file at `path` (None: none) and the environment.

    Raises:
        ConfigError: the file is missing or malformed, or a key is unknown or invalid.
    """
    data = read_toml(Path(path)) if path is not None else {}
    where = f" in {str(path)!r} or {ENV_PREFIX}* environment" if path else ""
    unknown = unknown_env_keys(
        os.environ, env_prefix=ENV_PREFIX, sections=AgentSettings.model_fields
    )
    try:
        settings = AgentSettings(**data)
    except ValidationError as exc:
        lines = None
        if path is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                lines = Path(path).read_text(encoding="utf-8").splitlines()
        message = describe(
            exc,
            AgentSettings,
            env_prefix=ENV_PREFIX,
            path=None if path is None else Path(path),
            lines=lines,
        )
        problems = "; ".join([*unknown, message])
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc
    if unknown:
        raise ConfigError(f"invalid configuration{where}: {'; '.join(unknown)}")
    return settings

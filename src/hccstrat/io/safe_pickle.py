"""Restricted unpickling of hccstrat's own model files.

Fitted estimators (scikit-learn, scikit-survival, PyTorch modules inside hccstrat
classes) are saved as pickles, and a pickle names the functions that rebuild it:
a crafted file can name ``os.system`` or ``builtins.eval`` and run them on load.
Checksums prove a file is the one that was saved, not that its author meant well.

:func:`restricted_loads` unpickles with an allow-list: any *class* of hccstrat's
models, pathology, radiology and clinical packages, scikit-learn, scikit-survival,
numpy, pandas, scipy, LightGBM, ``torch.nn`` and MONAI networks (classes rebuild
objects; those libraries' file readers and writers are excluded),
the handful of *functions* those libraries pickle to rebuild arrays, frames and
tensors, hccstrat's own feature transforms, and plain builtin containers. Anything
else is refused with :class:`UnsafePickleError` naming it. PyTorch storages are
rebuilt with ``torch.load(..., weights_only=True)`` instead of the unrestricted
loader torch would call.

This closes the usual one-line exploits; it is not a sandbox. Load files only from
sources you trust, and prefer a checksum from a trusted record (the registry).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from hccstrat.exceptions import ModelError

__all__ = ["UnsafePickleError", "restricted_loads"]

#: Packages whose classes a model file may instantiate.
_CLASS_ROOTS = (
    "hccstrat.models", "hccstrat.pathology", "hccstrat.radiology", "hccstrat.clinical",
    "sklearn", "sksurv", "numpy", "pandas", "scipy", "lightgbm", "torch.nn",
    "monai.networks", "collections", "datetime",
)
#: Sub-packages that read or write files, fetch data or compile code: never.
_DENIED_ROOTS = (
    "hccstrat.models.persist", "pandas.io", "numpy.f2py", "numpy.distutils",
    "numpy.testing", "numpy.ctypeslib", "numpy.lib._npyio_impl", "numpy.lib.npyio",
    "numpy.lib._datasource", "scipy.io", "sklearn.datasets", "sklearn.utils._testing",
)
_DENIED = {("numpy", "memmap"), ("numpy._core.memmap", "memmap"), ("numpy.core.memmap", "memmap")}
#: Functions (not classes) the allowed libraries pickle to rebuild their objects.
_FUNCTIONS = {
    ("copyreg", "_reconstructor"),
    ("functools", "partial"),  # binds allowed callables only: the target is checked too
    ("_codecs", "encode"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas.core.arrays.categorical", "_unpickle"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
}
#: hccstrat modules whose module-level functions are pure feature transforms.
_FUNCTION_MODULES = {"hccstrat.models._features"}
_BUILTINS = {
    "slice", "set", "frozenset", "complex", "range", "bytearray", "bytes", "object", "dict",
    "list", "tuple", "int", "float", "bool", "str",
}


class UnsafePickleError(ModelError):
    """A model file refers to something a model file has no business calling."""

    code = "HCC-MODEL-002"


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _torch_storage_from_bytes(data: bytes):
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _Restricted(pickle.Unpickler):
    def __init__(self, fh, source: str) -> None:
        super().__init__(fh)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _torch_storage_from_bytes
        if (module, name) in _FUNCTIONS or (module == "builtins" and name in _BUILTINS):
            return super().find_class(module, name)
        if module in _FUNCTION_MODULES:
            obj = super().find_class(module, name)
            # functions defined there, not whatever the module happens to import
            if callable(obj) and getattr(obj, "__module__", None) == module:
                return obj
        elif (
            _under(module, (*_CLASS_ROOTS, "torch"))
            and not _under(module, _DENIED_ROOTS)
            and (module, name) not in _DENIED
        ):
            obj = super().find_class(module, name)
            if isinstance(obj, type) and (module == "torch" or _under(module, _CLASS_ROOTS)):
                return obj
            if module == "torch" and type(obj).__name__ == "dtype":  # torch.float32 ...
                return obj
        raise UnsafePickleError(
            f"{self.source} refers to {module}.{name}, which a model file may not use "
            "(allowed: classes of hccstrat's model packages, scikit-learn, scikit-survival, "
            "numpy, pandas, scipy, LightGBM, torch.nn and MONAI networks, and the functions "
            "that rebuild their arrays)",
            hint="do not use a file you did not save yourself; if you trust its author "
            "completely, load it with trusted=True",
        )


def restricted_loads(data: bytes, *, source: str = "the model file") -> Any:
    """Unpickle ``data`` with the allow-list above.

    Parameters
    ----------
    data : bytes
        The pickle.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    object

    Raises
    ------
    UnsafePickleError
        When the pickle refers to anything outside the allow-list.
    """
    return _Restricted(io.BytesIO(data), source).load()

"""Pickled data files read without running code: a restricted unpickler.

Planetoid's raw files, LRGB's splits and CIFAR-10's batches are Python pickles, and a pickle can name
any callable to run while it loads. Before a loader hands such a file to PyG or torchvision (which
unpickle it freely), :func:`check_pickle` loads it with an unpickler that resolves only the globals
those files hold: numpy arrays and dtypes, scipy.sparse matrices, torch tensors (rebuilt through
torch's own weights-only loader) and builtin containers. Anything else is refused with a one-line
error naming the file and the global, and nothing from the file has run.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from ..errors import FixptError

ALLOWED = {
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "complex"), ("builtins", "bytes"), ("builtins", "bytearray"),
    ("builtins", "str"), ("builtins", "slice"), ("collections", "defaultdict"), ("collections", "OrderedDict"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("builtins", "object"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch.storage", "_load_from_bytes"),
}
SPARSE = ("csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix")
SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse.csc", "scipy.sparse._csc",
                  "scipy.sparse.coo", "scipy.sparse._coo", "scipy.sparse.lil", "scipy.sparse._lil")
RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # Python 2 pickles (Planetoid's)


class _Refused(Exception):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED` globals and scipy.sparse matrix classes; torch storages go through
    ``torch.load(weights_only=True)``."""

    def find_class(self, module: str, name: str):
        module = RENAMED.get(module, module)
        if (module, name) not in ALLOWED and not (module in SPARSE_MODULES and name in SPARSE):
            raise _Refused(f"{module}.{name}")
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage
        if module in SPARSE_MODULES:  # the public namespace (the private modules moved between scipy versions)
            import scipy.sparse

            return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def _load_storage(b: bytes):
    import io

    import torch

    return torch.load(io.BytesIO(b), weights_only=True)


def check_pickle(path: str | Path, encoding: str = "latin1") -> None:
    """Load ``path`` with :class:`RestrictedUnpickler`; a refused global is a one-line error naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            RestrictedUnpickler(f, encoding=encoding).load()
    except _Refused as e:
        raise FixptError(f"{path} asks to run the Python object {e} while it loads; refusing it (a data file holds only "
                         "arrays). Replace the file with the original data set's") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails in many ways
        raise FixptError(f"{path} is not a readable data file ({type(e).__name__}: {str(e)[:80]}); replace it with the "
                         "original data set's") from None

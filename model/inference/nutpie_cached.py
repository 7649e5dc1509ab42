"""nutpie's compiled model of a PyMC model, with its numba compilation cached on disk.

``nutpie.compile_pymc_model(model, backend="numba")`` builds the joint log-density +
gradient (and the "expand" function of the traced variables) as pytensor functions in
numba mode, then wraps each in a ``numba.cfunc`` that nuts-rs calls without the GIL.  Those
two cfuncs read the model's shared data (the observed ``counts``, ...) through addresses
taken at compile time, so numba refuses to cache them: every process compiles them afresh
(about 10 s on a 2-core machine), although pytensor caches the inner numba functions.

:func:`compile_cached` builds the same thing from the same parts -- nutpie's own graphs
(``_make_functions``: same rewrites, same gradient), its initial points, dims and coords,
its user-data record and :class:`nutpie.compile_pymc.CompiledPyMCModel` (so ``with_data``
and ``nutpie.sample`` work unchanged) -- but with cfuncs that take every address from the
user-data record at call time, generated as source text and registered with pytensor's
numba cache under a key made of that text and pytensor's cache key of the inner functions.
A later process then loads them from the cache (pytensor's ``base_compiledir``) in a fraction
of a second.  The log density, the initial points and the sampler are nutpie's: the draws
are bit-identical to nutpie's numba route (tested).

It uses nutpie internals (``nutpie.compile_pymc``); :func:`cached_compile_available` says
whether the installed nutpie has them, else :func:`compile_cached` falls back to
``nutpie.compile_pymc_model``.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

# Bump when the generated source or the user-data reading changes meaning.
WRAPPER_VERSION = 3  # 2: compiled without fastmath (diffuse_fit.inference.exact_float)

_LOGP_SOURCE = """
def logp_cfunc(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, ())
        words = carray(user_data_, ({n_words},), np.uint64)
{unpack}
        logp_val, grad = inner({args})
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0
"""

_EXPAND_SOURCE = """
def expand_cfunc(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_expanded},))
        words = carray(user_data_, ({n_words},), np.uint64)
{unpack}
        (values,) = inner({args})
        out[...] = values
    except Exception:  # noqa: BLE001
        return -2
    return 0
"""


def cached_compile_available() -> bool:
    """Whether the installed nutpie has the internals :func:`compile_cached` builds on."""
    try:
        from nutpie.compile_pymc import (  # noqa: F401
            CompiledPyMCModel,
            _make_c_expand_func,
            _make_c_logp_func,
            _make_functions,
            _prepare_dims_and_coords,
            _wrap_with_lock,
            make_user_data,
        )
    except ImportError:
        return False
    return True


def compile_cached(model):
    """``nutpie.compile_pymc_model(model, backend="numba")`` with its cfuncs cached on disk."""
    if not cached_compile_available():
        import nutpie

        warnings.warn(
            "this nutpie lacks the internals of the cached compilation: "
            "nutpie.compile_pymc_model compiles instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return nutpie.compile_pymc_model(model, backend="numba")
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _make_functions,
        _prepare_dims_and_coords,
        _wrap_with_lock,
        make_user_data,
    )
    from pymc.initial_point import make_initial_point_fn

    # as nutpie.compile_pymc_model(model, backend="numba") with its defaults
    initial_point_fn = _wrap_with_lock(
        make_initial_point_fn(
            model=model,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs),
            return_transformed=True,
        )
    )
    n_dim, n_expanded, logp_fn_pt, expand_fn_pt, flat_initial_point_fn, shape_info, reparam = (
        _make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=initial_point_fn,
        )
    )
    shared_var_keys, shared_data = {}, {}
    for var in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
        if var not in shared_var_keys:  # deterministic keys: they are part of the source
            key = f"s{len(shared_var_keys)}"
            shared_var_keys[var] = key
            shared_data[key] = np.array(var.get_value(), order="C", copy=True)
            shared_data[key].flags.writeable = False
    user_data = make_user_data(shared_var_keys, shared_data)
    if not _same_signatures(
        n_dim, n_expanded, logp_fn_pt, expand_fn_pt, user_data, shared_var_keys, shared_data
    ):
        import nutpie

        warnings.warn(
            "this nutpie calls its cfuncs with other arguments than the cached "
            "compilation's: nutpie.compile_pymc_model compiles instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return nutpie.compile_pymc_model(model, backend="numba")
    logp_cfunc = _cfunc(
        _LOGP_SOURCE,
        "logp_cfunc",
        logp_fn_pt,
        shared_var_keys,
        shared_data,
        user_data,
        n_dim=n_dim,
    )
    expand_cfunc = _cfunc(
        _EXPAND_SOURCE,
        "expand_cfunc",
        expand_fn_pt,
        shared_var_keys,
        shared_data,
        user_data,
        n_dim=n_dim,
        n_expanded=n_expanded,
    )
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparam)
    return CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_cfunc,
        compiled_expand_func=expand_cfunc,
        initial_point_func=flat_initial_point_fn,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_fn_pt,
        expand_func=expand_fn_pt,
        reparameterized_names=reparam,
    )


def _same_signatures(n_dim, n_expanded, logp_fn_pt, expand_fn_pt, user_data, keys, data):
    """Whether nutpie's own cfuncs have the signatures of ours (nutpie builds them lazily:
    nothing is compiled here)."""
    from nutpie.compile_pymc import _make_c_expand_func, _make_c_logp_func

    logp_keys = [keys[var] for var in logp_fn_pt.get_shared()]
    expand_keys = [keys[var] for var in expand_fn_pt.get_shared()]
    _, logp_sig = _make_c_logp_func(n_dim, logp_fn_pt.vm.jit_fn, user_data, logp_keys, data)
    _, expand_sig = _make_c_expand_func(
        n_dim, n_expanded, expand_fn_pt.vm.jit_fn, user_data, expand_keys, data
    )
    return logp_sig == _signature("logp_cfunc") and expand_sig == _signature("expand_cfunc")


def _word(dtype: np.dtype, path: list[str]) -> int:
    """Index (in 8-byte words) of the field ``path`` of the record ``dtype``."""
    offset = 0
    for name in path:
        dtype, at = dtype.fields[name][:2]
        offset += at
    if offset % 8 or dtype.base.itemsize != 8:
        raise ValueError(f"unexpected nutpie user-data layout at {path}: {dtype}")
    return offset // 8


def _unpack_lines(function, shared_var_keys, shared_data, user_data) -> tuple[str, str]:
    """Source lines making the function's shared inputs from the user-data record (their
    addresses and shapes are read at call time, so ``with_data`` needs no recompilation)."""
    lines, args = [], []
    for i, var in enumerate(function.get_shared()):
        key = shared_var_keys[var]
        value = shared_data[key]
        data = _word(user_data.dtype, ["shared", "data", key])
        if value.ndim:
            first = _word(user_data.dtype, ["shared", "shape", key])
            shape = "(" + "".join(f"int(words[{first + d}]), " for d in range(value.ndim)) + ")"
        else:
            shape = "()"
        lines.append(
            f"        a{i} = carray(address_to_voidptr(words[{data}]), {shape}, "
            f"np.{value.dtype.name})"
        )
        args.append(f"a{i}")
    return "\n".join(lines), _call_arguments(["x", *args])


# CPython compiles a call or tuple display of more than 30 items through a list, which numba
# cannot compile: longer argument lists are passed as a sum of short tuples, star-unpacked.
MAX_CALL_ITEMS = 25


def _call_arguments(names: list[str]) -> str:
    """The argument list of a call of the inner function with ``names``, for numba."""
    if len(names) <= MAX_CALL_ITEMS:
        return ", ".join(names)
    chunks = [names[i : i + MAX_CALL_ITEMS] for i in range(0, len(names), MAX_CALL_ITEMS)]
    return "*(" + " + ".join("(" + ", ".join(c) + ",)" for c in chunks) + ")"


def _cfunc(template, name, function, shared_var_keys, shared_data, user_data, **sizes):
    """The numba cfunc of ``template`` around the numba function of the pytensor ``function``,
    from pytensor's numba cache when it holds it."""
    import numba
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    unpack, args = _unpack_lines(function, shared_var_keys, shared_data, user_data)
    n_words = user_data.dtype.itemsize // 8
    source = template.format(n_words=n_words, unpack=unpack, args=args, **sizes)
    inner = function.vm.jit_fn
    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    key = None
    if inner_key is not None:  # pytensor could key (and cache) the inner function
        # the module's name too: a cached cfunc refers to this module's globals by name, and
        # one cached under another name (before the package was renamed) cannot be loaded
        digest = hashlib.sha256(
            f"{WRAPPER_VERSION}\n{__name__}\n{user_data.dtype.descr}\n{inner_key}\n{source}".encode()
        ).hexdigest()
        key = f"diffuse_fit_{name}_{digest}"
    py_func = compile_numba_function_src(
        source, name, {**globals(), "carray": numba.carray, "inner": inner}, cache_key=key
    )
    signature = _signature(name)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Cannot cache compiled function", category=numba.NumbaWarning
        )
        return numba.cfunc(signature, cache=key is not None)(py_func)


def _signature(name: str):
    from numba import types

    double_ptr = types.CPointer(types.double)
    if name == "logp_cfunc":  # (dim, x, gradient out, logp out, user data)
        return types.int64(types.uint64, double_ptr, double_ptr, double_ptr, types.voidptr)
    # (dim, n expanded, x, values out, user data)
    return types.int64(types.uint64, types.uint64, double_ptr, double_ptr, types.voidptr)


def _address_to_voidptr_intrinsic():
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def address_to_voidptr(typingctx, address):
        """The ``void *`` at the integer ``address``."""

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(address), codegen

    return address_to_voidptr


address_to_voidptr = _address_to_voidptr_intrinsic()
